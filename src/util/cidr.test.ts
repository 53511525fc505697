import fc from 'fast-check';
import t from 'tap';
import { contains, formatCidr, networkOf, overlaps, PrefixSet, splitCidr } from './cidr.js';
import { parseIp } from './ip.js';

const cidr = (text: string) => {
  const { ip, len } = splitCidr(text);
  return networkOf(ip!, len!);
};

t.test('splitCidr: the address as written and a length within its width', async (t) => {
  t.same(splitCidr('198.18.1.7/24'), { ip: parseIp('198.18.1.7'), len: 24 });
  t.same(splitCidr('2001:DB8::/64'), { ip: parseIp('2001:db8::'), len: 64 });
  t.same(splitCidr('198.18.0.0'), { ip: undefined, len: undefined });
  t.same(splitCidr('a/1'), { ip: undefined, len: undefined });
  t.same(splitCidr('/24'), { ip: undefined, len: undefined });
  for (const s of [
    '198.18.0.0/33',
    '2001:db8::/129',
    '1.2.3.4/-1',
    '1.2.3.4/ 8',
    '1.2.3.4/',
    '1.2.3.4/0008',
  ]) {
    const p = splitCidr(s);
    t.ok(p.ip !== undefined && p.len === undefined, s);
  }
  t.equal(formatCidr(cidr('198.18.1.7/24')), '198.18.1.0/24');
  t.equal(formatCidr(cidr('2001:DB8:0::1/64')), '2001:db8::/64');
});

t.test('contains / overlaps', async (t) => {
  const net = cidr('198.18.0.0/16');
  t.ok(contains(net, parseIp('198.18.255.1')!));
  t.notOk(contains(net, parseIp('198.19.0.1')!));
  t.notOk(contains(net, parseIp('::1')!));
  t.ok(overlaps(net, cidr('198.18.3.0/24')));
  t.notOk(overlaps(net, cidr('198.19.3.0/24')));
  t.notOk(overlaps(net, cidr('2001:db8::/64')));
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.nat(128), (s, n) => {
      const ip = parseIp(s)!;
      const c = cidr(`${s}/${n % ((ip.family === 4 ? 32 : 128) + 1)}`);
      return contains(c, ip) && overlaps(c, cidr(formatCidr(c)));
    }),
  );
});

t.test('PrefixSet finds an overlapping member, shorter or longer', async (t) => {
  const set = new PrefixSet<string>();
  set.add(cidr('198.18.1.0/24'), 'a');
  set.add(cidr('2001:db8::/64'), 'b');
  t.equal(set.findOverlap(cidr('198.18.1.128/25'))?.value, 'a');
  t.equal(set.findOverlap(cidr('198.18.0.0/16'))?.value, 'a');
  t.equal(set.findOverlap(cidr('198.18.2.0/24')), undefined);
  t.equal(set.findOverlap(cidr('2001:db8::1/128'))?.value, 'b');
  t.equal(set.findOverlap(cidr('2001:db8:1::/64')), undefined);
});
