import fc from 'fast-check';
import t from 'tap';
import { contains, formatCidr, overlaps } from '../util/cidr.js';
import { parseIp } from '../util/ip.js';
import { parseCidr } from './cidr.js';

const v6text = fc.ipV6();
const v4text = fc.ipV4();

// Prefix arithmetic is src/util/cidr.ts's (tested there); this checks host-gw's reading and its code.
t.test('parseCidr: canonical prefixes, host bits refused, garbage refused with the code', async (t) => {
  t.equal(formatCidr(parseCidr('198.18.0.0/16', 'x')), '198.18.0.0/16');
  t.equal(formatCidr(parseCidr('2001:DB8:0::/64', 'x')), '2001:db8::/64');
  t.equal(formatCidr(parseCidr('198.18.1.7/24', 'x', false)), '198.18.1.0/24');
  t.throws(() => parseCidr('198.18.1.7/24', 'x'), { code: 'VIPMESH_HOSTGW_BAD_CIDR' });
  const cached = parseCidr('198.18.9.0/24', 'x');
  t.equal(parseCidr('198.18.9.0/24', 'x'), cached, 'the same object from the cache');
  t.ok(Object.isFrozen(cached));
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
  t.throws(() => parseCidr('198.18.1.7/24', 'pod subnet'), {
    message: 'pod subnet: "198.18.1.7/24" has host bits set (did you mean 198.18.1.0/24?)',
  });
  t.throws(() => parseCidr('nope', 'pod subnet'), {
    message: 'pod subnet: "nope" is not an IP prefix (like 10.42.0.0/16)',
  });
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
