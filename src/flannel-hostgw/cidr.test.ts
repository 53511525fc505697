import fc from 'fast-check';
import t from 'tap';
import {
  contains,
  formatCidr,
  formatIp,
  ipFromBytes,
  ipToBytes,
  overlaps,
  parseCidr,
  parseIp,
} from './cidr.js';

const v6text = fc.ipV6();
const v4text = fc.ipV4();

// Address text and bytes are src/util/ip.ts's (tested there); this checks the cached wrappers.
t.test('addresses: parsed once, frozen, formatted and encoded by util/ip', async (t) => {
  const ip = parseIp('2001:DB8:0:0:1:0:0:1')!;
  t.equal(parseIp('2001:DB8:0:0:1:0:0:1'), ip, 'the same object from the cache');
  t.ok(Object.isFrozen(ip));
  t.equal(formatIp(ip), '2001:db8::1:0:0:1');
  t.equal(formatIp(parseIp('198.51.100.7')!), '198.51.100.7');
  t.same(ipFromBytes(ipToBytes(ip)), { family: 6, value: ip.value });
  t.equal(parseIp('fe80::1%eth0'), undefined);
});

t.test('parseCidr: canonical prefixes, host bits refused, garbage refused with the code', async (t) => {
  t.equal(formatCidr(parseCidr('198.18.0.0/16', 'x')), '198.18.0.0/16');
  t.equal(formatCidr(parseCidr('2001:DB8:0::/64', 'x')), '2001:db8::/64');
  t.equal(formatCidr(parseCidr('198.18.1.7/24', 'x', false)), '198.18.1.0/24');
  t.throws(() => parseCidr('198.18.1.7/24', 'x'), { code: 'VIPMESH_HOSTGW_BAD_CIDR' });
  for (const s of [
    '198.18.0.0',
    '198.18.0.0/33',
    '2001:db8::/129',
    '/24',
    'a/1',
    '1.2.3.4/-1',
    '1.2.3.4/ 8',
  ]) {
    t.throws(() => parseCidr(s, 'x'), { code: 'VIPMESH_HOSTGW_BAD_CIDR' }, s);
  }
  fc.assert(
    fc.property(fc.string(), (s) => {
      try {
        const c = parseCidr(s, 'fuzz');
        return parseCidr(formatCidr(c), 'again').value === c.value;
      } catch (err) {
        return (err as { code?: string }).code === 'VIPMESH_HOSTGW_BAD_CIDR';
      }
    }),
  );
  fc.assert(
    fc.property(fc.oneof(v4text, v6text), fc.nat(128), (s, n) => {
      const ip = parseIp(s)!;
      const len = n % ((ip.family === 4 ? 32 : 128) + 1);
      const c = parseCidr(`${s}/${len}`, 'p', false);
      return contains(c, ip) && overlaps(c, parseCidr(formatCidr(c), 'q'));
    }),
  );
});

t.test('contains / overlaps', async (t) => {
  const net = parseCidr('198.18.0.0/16', 'x');
  t.ok(contains(net, parseIp('198.18.255.1')!));
  t.notOk(contains(net, parseIp('198.19.0.1')!));
  t.notOk(contains(net, parseIp('::1')!));
  t.ok(overlaps(net, parseCidr('198.18.3.0/24', 'x')));
  t.notOk(overlaps(net, parseCidr('198.19.3.0/24', 'x')));
  t.notOk(overlaps(net, parseCidr('2001:db8::/64', 'x')));
});
