import fc from 'fast-check';
import t from 'tap';
import { formatIpBytes } from '../util/ip.js';
import { formatMac } from './addr.js';
import { ArpOp, arpProbe, arpReply, decodeArp, encodeArp, gratuitousArp, MIN_FRAME } from './codec.js';
import { decodeNdp, encodeNdp, icmp6Checksum, naReply, ndpProbe, unsolicitedNa } from './ndp.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Captured with tcpdump -xx in a lab: client 02:00:00:00:00:02 (198.51.100.2, fe80::ff:fe00:2) asks
// n1 02:00:00:00:00:11 (198.51.100.11, 2001:db8::11); the kernel's answers follow each question.
const ARP_REQUEST = hex(`ffff ffff ffff 0200 0000 0002 0806 0001 0800 0604 0001 0200 0000 0002 c633 6402
  ffff ffff ffff c633 640b`);
const ARP_REPLY_BY_KERNEL =
  hex(`0200 0000 0002 0200 0000 0011 0806 0001 0800 0604 0002 0200 0000 0011 c633 640b
  0200 0000 0002 c633 6402`);
const NS = hex(`3333 ff00 0011 0200 0000 0002 86dd 6008 81ac 0020 3aff fe80 0000 0000 0000 0000
  00ff fe00 0002 ff02 0000 0000 0000 0000 0001 ff00 0011 8700 4c3f 0000 0000 2001
  0db8 0000 0000 0000 0000 0000 0011 0101 0200 0000 0002`);
const NA_BY_KERNEL = hex(`0200 0000 0002 0200 0000 0011 86dd 6000 0000 0020 3aff 2001 0db8 0000 0000 0000
  0000 0000 0011 fe80 0000 0000 0000 0000 00ff fe00 0002 8800 ba7b 6000 0000 2001
  0db8 0000 0000 0000 0000 0000 0011 0201 0200 0000 0011`);
const DAD_NS = hex(`3333 ff66 e90c 5e65 4666 e90c 86dd 6000 0000 0020 3aff 0000 0000 0000 0000 0000
  0000 0000 0000 ff02 0000 0000 0000 0000 0001 ff66 e90c 8700 d024 0000 0000 fe80
  0000 0000 0000 5c65 46ff fe66 e90c 0e01 ae60 2126 5a27`);
const N1_MAC = hex('020000000011');

t.test('ARP: a captured request decodes, and our reply equals the kernel reply (plus padding)', async (t) => {
  const req = decodeArp(ARP_REQUEST);
  if (typeof req === 'string') throw new Error(req);
  t.equal(req.op, ArpOp.request);
  t.equal(formatMac(req.sha), '02:00:00:00:00:02');
  t.equal(formatIpBytes(req.spa), '198.51.100.2');
  t.equal(formatIpBytes(req.tpa), '198.51.100.11');
  const reply = arpReply(req, N1_MAC);
  t.equal(reply.length, MIN_FRAME);
  t.same(reply.subarray(0, 42), ARP_REPLY_BY_KERNEL);
  t.ok(
    reply.subarray(42).every((b) => b === 0),
    'zero padding',
  );
});

t.test('ARP: gratuitous pair and probe carry the RFC 5227 fields', async (t) => {
  const ip = hex('c6336464');
  const [req, rep] = gratuitousArp(N1_MAC, ip).map((f) => decodeArp(f));
  if (typeof req === 'string' || typeof rep === 'string' || !req || !rep) throw new Error('decode');
  t.equal(req.op, ArpOp.request);
  t.equal(rep.op, ArpOp.reply);
  for (const p of [req, rep]) {
    t.equal(formatMac(p.ethDst), 'ff:ff:ff:ff:ff:ff');
    t.equal(formatIpBytes(p.spa), '198.51.100.100');
    t.equal(formatIpBytes(p.tpa), '198.51.100.100');
    t.equal(formatMac(p.sha), '02:00:00:00:00:11');
  }
  const probe = decodeArp(arpProbe(N1_MAC, ip));
  if (typeof probe === 'string') throw new Error(probe);
  t.equal(formatIpBytes(probe.spa), '0.0.0.0', 'a probe teaches no cache');
  t.equal(formatIpBytes(probe.tpa), '198.51.100.100');
});

t.test('ARP: malformed frames give a reason', async (t) => {
  t.equal(decodeArp(ARP_REQUEST.subarray(0, 41)), 'short-frame');
  const cases: Array<[number, number, string]> = [
    [12, 0x08, 'wrong-ethertype'],
    [15, 6, 'bad-hardware-type'],
    [16, 0x86, 'bad-protocol-type'],
    [21, 9, 'bad-opcode'],
  ];
  for (const [off, val, want] of cases) {
    const f = Buffer.from(ARP_REQUEST);
    f[off] = val;
    if (off === 12) f[13] = 0x00;
    t.equal(decodeArp(f), want, want);
  }
});

t.test('NDP: a captured NS decodes, and our NA equals the kernel NA', async (t) => {
  const ns = decodeNdp(NS);
  if (typeof ns === 'string') throw new Error(ns);
  t.equal(ns.type, 135);
  t.equal(formatIpBytes(ns.target), '2001:db8::11');
  t.equal(formatIpBytes(ns.src), 'fe80::ff:fe00:2');
  t.equal(formatMac(ns.lladdr!), '02:00:00:00:00:02');
  t.same(naReply(ns, N1_MAC), NA_BY_KERNEL);
  const na = decodeNdp(NA_BY_KERNEL);
  if (typeof na === 'string') throw new Error(na);
  t.same(na.flags, { router: false, solicited: true, override: true });
  t.equal(formatMac(na.lladdr!), '02:00:00:00:00:11');
});

t.test('NDP: a DAD probe (source ::, nonce option) decodes and is answered to all-nodes', async (t) => {
  const dad = decodeNdp(DAD_NS);
  if (typeof dad === 'string') throw new Error(dad);
  t.equal(dad.lladdr, undefined);
  const na = decodeNdp(naReply(dad, N1_MAC));
  if (typeof na === 'string') throw new Error(na);
  t.equal(formatIpBytes(na.dst), 'ff02::1');
  t.equal(na.flags?.solicited, false, 'a DAD answer is not solicited (RFC 4861 7.2.4)');
  const probe = decodeNdp(ndpProbe(N1_MAC, hex('20010db8000000000000000000000100')));
  if (typeof probe === 'string') throw new Error(probe);
  t.equal(formatIpBytes(probe.src), '::');
  t.equal(formatIpBytes(probe.dst), 'ff02::1:ff00:100');
  t.equal(formatMac(probe.ethDst), '33:33:ff:00:01:00');
  const una = decodeNdp(unsolicitedNa(N1_MAC, hex('20010db8000000000000000000000100')));
  if (typeof una === 'string') throw new Error(una);
  t.same(una.flags, { router: false, solicited: false, override: true });
  t.equal(formatIpBytes(una.dst), 'ff02::1');
});

t.test('NDP: invalid messages give a reason (RFC 4861 7.1)', async (t) => {
  const mut = (off: number, val: number) => {
    const f = Buffer.from(NS);
    f[off] = val;
    return f;
  };
  t.equal(decodeNdp(NS.subarray(0, 70)), 'short-frame');
  t.equal(decodeNdp(mut(21, 64)), 'bad-hop-limit');
  t.equal(decodeNdp(mut(55, 1)), 'bad-icmp-code');
  t.equal(decodeNdp(mut(60, 0x99)), 'bad-checksum');
  t.equal(decodeNdp(mut(20, 17)), 'not-icmpv6');
  t.equal(decodeNdp(mut(54, 128)), 'not-ndp');
  t.equal(decodeNdp(mut(19, 0x40)), 'bad-ip-length');
  const zeroOpt = Buffer.from(NS);
  zeroOpt[79] = 0;
  zeroOpt.writeUInt16BE(0, 56);
  zeroOpt.writeUInt16BE(
    icmp6Checksum(zeroOpt.subarray(22, 38), zeroOpt.subarray(38, 54), zeroOpt.subarray(54)),
    56,
  );
  t.equal(decodeNdp(zeroOpt), 'bad-option');
  const mcastTarget = encodeNdp({
    type: 135,
    ethDst: N1_MAC,
    ethSrc: N1_MAC,
    src: hex('fe800000000000000000000000000001'),
    dst: hex('ff0200000000000000000001ff000001'),
    target: hex('ff020000000000000000000000000001'),
  });
  t.equal(decodeNdp(mcastTarget), 'bad-target');
});

t.test('fuzz: decoding arbitrary bytes never throws', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
      const b = Buffer.from(bytes);
      const a = decodeArp(b);
      const n = decodeNdp(b);
      return (
        (typeof a === 'string' || typeof a === 'object') && (typeof n === 'string' || typeof n === 'object')
      );
    }),
    { numRuns: 5000 },
  );
  // Mutations of valid frames reach the deeper checks.
  fc.assert(
    fc.property(fc.nat(NS.length - 1), fc.integer({ min: 0, max: 255 }), fc.boolean(), (off, val, ndp) => {
      const f = Buffer.from(ndp ? NS : ARP_REQUEST);
      f[off] = val;
      const r = ndp ? decodeNdp(f) : decodeArp(f.subarray(0, Math.min(f.length, 60)));
      return typeof r === 'string' || typeof r === 'object';
    }),
    { numRuns: 5000 },
  );
  t.pass('no exception');
});

t.test('property: encode then decode gives the fields back', async (t) => {
  const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));
  fc.assert(
    fc.property(
      bytes(6),
      bytes(6),
      fc.constantFrom(1 as const, 2 as const),
      bytes(6),
      bytes(4),
      bytes(6),
      bytes(4),
      (ethDst, ethSrc, op, sha, spa, tha, tpa) => {
        const p = decodeArp(encodeArp({ ethDst, ethSrc, op, sha, spa, tha, tpa }));
        if (typeof p === 'string') return false;
        return (
          p.op === op &&
          p.sha.equals(sha) &&
          p.spa.equals(spa) &&
          p.tha.equals(tha) &&
          p.tpa.equals(tpa) &&
          p.ethSrc.equals(ethSrc)
        );
      },
    ),
  );
  fc.assert(
    fc.property(
      bytes(6),
      bytes(16),
      bytes(16),
      bytes(16),
      fc.boolean(),
      fc.boolean(),
      (mac, src, dst, target, na, withOpt) => {
        target[0] = 0x20; // not multicast
        src[0] = 0xfe; // never unspecified
        const f = encodeNdp({
          type: na ? 136 : 135,
          ethDst: mac,
          ethSrc: mac,
          src,
          dst,
          target,
          ...(withOpt ? { lladdr: mac } : {}),
          flags: { override: true },
        });
        const p = decodeNdp(f);
        if (typeof p === 'string') return dst[0] === 0xff && p === 'bad-target';
        return (
          p.target.equals(target) &&
          p.src.equals(src) &&
          (withOpt ? p.lladdr?.equals(mac) === true : p.lladdr === undefined)
        );
      },
    ),
  );
  t.pass('round trips');
});
