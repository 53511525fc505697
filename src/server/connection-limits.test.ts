import { createServer } from 'node:https';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { createRegistry } from '../metrics.js';
import { until } from '../testing/until.js';
import { ConnectionLimits, connectionLimitDefaults, openFileLimit, sourceOf } from './connection-limits.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
`;

t.test('the open-file limit comes from /proc/self/limits; the caps follow it', async (t) => {
  t.equal(openFileLimit(LIMITS), 1024);
  t.equal(openFileLimit('Max open files  unlimited  unlimited  files\n'), undefined);
  t.equal(openFileLimit(''), undefined);
  t.type(openFileLimit(), 'number', 'this process has one');
  t.match(connectionLimitDefaults(1024), { maxConnections: 512, highWater: 384, maxPerSource: 64 });
  t.equal(connectionLimitDefaults(1_048_576).maxConnections, 8192, 'capped');
  t.equal(connectionLimitDefaults(50).maxConnections, 64, 'floored');
});

t.test('a source is an IPv4 address (mapped ones too) or an IPv6 /64', async (t) => {
  t.equal(sourceOf('198.51.100.7'), '198.51.100.7');
  t.equal(sourceOf('::ffff:198.51.100.7'), '198.51.100.7');
  t.equal(sourceOf('2001:db8:1:2:3:4:5:6'), '2001:0db8:0001:0002::/64');
  t.equal(sourceOf('2001:db8:1:2::9'), sourceOf('2001:db8:1:2:ffff::1'), 'one /64, one source');
  t.equal(sourceOf(undefined), 'unknown');
});

t.test('past the global cap every connection is refused, counted, and logged once', async (t) => {
  let text = '';
  const sink = new Writable({
    write(chunk, _e, cb) {
      text += chunk;
      cb();
    },
  });
  const registry = createRegistry();
  const limits = new ConnectionLimits(
    { maxConnections: 5, maxPerSource: 100, highWater: 100, logSummaryMs: 50 },
    { logger: pino({ level: 'info' }, sink), registry },
  );
  const server = createServer(limits.serverOptions());
  limits.install(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const socks: Socket[] = [];
  t.teardown(() => {
    for (const s of socks) s.destroy();
    server.closeAllConnections();
    server.close();
    limits.close();
  });
  const { port } = server.address() as AddressInfo;
  for (let i = 0; i < 8; i++) {
    const s = connect({ port, host: '127.0.0.1' });
    s.on('error', () => undefined);
    socks.push(s);
  }
  const refused = async () => {
    const { values } = await registry
      .getSingleMetric('vipmesh_controlplane_api_connections_refused_total')!
      .get();
    return values.find((v) => v.labels['reason'] === 'global')?.value ?? 0;
  };
  await until('three refusals', async () => (await refused()) === 3);
  t.equal(limits.open, 5, 'five held');
  await until('the summary line', () => text.includes('refused 3 connections'));
  const lines = text.trim().split('\n');
  t.equal(lines.length, 1, 'one line for three refusals');
  t.match(JSON.parse(lines[0]!), {
    refused: 3,
    top: [{ source: '127.0.0.1', reason: 'global', refused: 3 }],
  });
});
