import fc from 'fast-check';
import t from 'tap';
import { bracketHost, isPortNumber, joinHostPort, splitHostPort } from './host-port.js';

t.test('joinHostPort brackets IPv6 hosts only', async (t) => {
  t.equal(joinHostPort('127.0.0.1', 80), '127.0.0.1:80');
  t.equal(joinHostPort('::1', 80), '[::1]:80');
  t.equal(joinHostPort('localhost', 0), 'localhost:0');
  t.equal(bracketHost('2001:db8::1'), '[2001:db8::1]');
  t.equal(bracketHost('198.51.100.1'), '198.51.100.1');
});

t.test('splitHostPort: the last colon, brackets off, the default host without one', async (t) => {
  t.same(splitHostPort('127.0.0.1:7472', 'd'), { host: '127.0.0.1', port: 7472 });
  t.same(splitHostPort('[::1]:80', 'd'), { host: '::1', port: 80 });
  t.same(splitHostPort(':9', 'd'), { host: 'd', port: 9 });
  t.same(splitHostPort('9100', 'd'), { host: 'd', port: 9100 });
  t.same(splitHostPort('[::1:80', 'd'), { host: '[::1', port: 80 }, 'half a bracket stays');
  t.notOk(isPortNumber(splitHostPort('localhost', 'd').port));
  t.notOk(isPortNumber(splitHostPort('h:70000', 'd').port));
  t.notOk(isPortNumber(splitHostPort('h:8.5', 'd').port));
  t.ok(isPortNumber(0));
  t.ok(isPortNumber(65535));
  fc.assert(
    fc.property(
      fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain()),
      fc.integer({ min: 0, max: 65535 }),
      (host, port) => {
        const r = splitHostPort(joinHostPort(host, port), 'd');
        return r.host === host && r.port === port;
      },
    ),
  );
});
