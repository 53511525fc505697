import fc from 'fast-check';
import t from 'tap';
import { formatIpBytes, parseIpAddr } from '../util/ip.js';
import { formatMac, multicastMac, parseMac, parseVip, solicitedNode } from './addr.js';
import { encodeFilter, NDP_FILTER, runFilter } from './bpf.js';
import { arpProbe } from './codec.js';
import { decodeNdp, ndpProbe, unsolicitedNa } from './ndp.js';

// Address text and the wire form are src/util/ip.ts's (RFC 5952, checked against ip-address there).
t.test('parseVip accepts unicast addresses and names what is wrong', async (t) => {
  t.equal(parseVip(' 198.51.100.100 ').text, '198.51.100.100');
  t.equal(parseVip('2001:DB8::100').family, 6);
  for (const bad of [
    '198.51.100.0/24',
    'eth0',
    '',
    '224.0.0.1',
    '127.0.0.1',
    '0.0.0.0',
    'fe80::1',
    'ff02::1',
    '::1',
    '::',
    '2001:db8::1%eth0',
  ]) {
    t.throws(() => parseVip(bad), { code: 'VIPMESH_ARP_BAD_VIP' }, `rejects ${JSON.stringify(bad)}`);
  }
});

t.test('MAC text round-trips; multicast mapping follows RFC 2464 and RFC 4291', async (t) => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 6, maxLength: 6 }),
      (b) => parseMac(formatMac(b))?.equals(Buffer.from(b)) === true,
    ),
  );
  t.equal(parseMac('02-00-00-00-00-0A') && formatMac(parseMac('02-00-00-00-00-0A')!), '02:00:00:00:00:0a');
  t.equal(parseMac('02:00:00:00:00'), undefined);
  const ip = parseIpAddr('2001:db8::12:3456')!.bytes;
  t.equal(formatIpBytes(solicitedNode(ip)), 'ff02::1:ff12:3456');
  t.equal(formatMac(multicastMac(solicitedNode(ip))), '33:33:ff:12:34:56');
});

t.test('the NDP socket filter passes NS and NA only', async (t) => {
  const mac = Buffer.from('020000000011', 'hex');
  const v6 = parseIpAddr('2001:db8::100')!.bytes;
  t.equal(runFilter(NDP_FILTER, ndpProbe(mac, v6)), 0xffff, 'NS passes');
  t.equal(runFilter(NDP_FILTER, unsolicitedNa(mac, v6)), 0xffff, 'NA passes');
  t.equal(runFilter(NDP_FILTER, arpProbe(mac, Buffer.from([198, 51, 100, 1]))), 0, 'ARP is dropped');
  const echo = Buffer.from(unsolicitedNa(mac, v6));
  echo[54] = 128;
  t.equal(runFilter(NDP_FILTER, echo), 0, 'an echo request is dropped');
  const udp = Buffer.from(unsolicitedNa(mac, v6));
  udp[20] = 17;
  t.equal(runFilter(NDP_FILTER, udp), 0, 'UDP is dropped');
  t.equal(runFilter(NDP_FILTER, Buffer.alloc(10)), 0, 'a runt is dropped');
  t.equal(encodeFilter(NDP_FILTER).length, NDP_FILTER.length * 8, 'struct sock_filter is 8 bytes');
  // Everything the filter passes the codec can judge; everything it drops the codec would drop too.
  fc.assert(
    fc.property(fc.nat(85), fc.integer({ min: 0, max: 255 }), (off, val) => {
      const f = Buffer.from(ndpProbe(mac, v6));
      f[off] = val;
      return runFilter(NDP_FILTER, f) !== 0 || typeof decodeNdp(f) === 'string';
    }),
  );
});
