import t from 'tap';
import { parseMac } from './addr.js';
import { ArpOp, encodeArp, gratuitousArp } from './codec.js';
import { ndpProbe, unsolicitedNa } from './ndp.js';
import { PacketType } from './packet-socket.js';
import { type HandleResult, Responder } from './responder.js';

const MAC = parseMac('02:00:00:00:00:11')!;
const OTHER = parseMac('02:00:00:00:00:22')!;
const CLIENT = parseMac('02:00:00:00:00:02')!;
const v4 = (s: string) => Buffer.from(s.split('.').map(Number));
const VIP6 = Buffer.from('20010db8000000000000000000000100', 'hex');
const req = (tpa: string, sha = CLIENT, spa = '198.51.100.2') =>
  encodeArp({
    ethDst: Buffer.alloc(6, 0xff),
    ethSrc: sha,
    op: ArpOp.request,
    sha,
    spa: v4(spa),
    tha: Buffer.alloc(6),
    tpa: v4(tpa),
  });

t.test('drop reasons and answers (case table)', async (t) => {
  const sent: Buffer[] = [];
  const claims: string[] = [];
  const r = new Responder(
    { name: 'eth0', mac: MAC },
    { send: (f) => sent.push(f) },
    { send: (f) => sent.push(f) },
    {
      shouldAnnounce: (ip, ifname) =>
        ifname === 'eth0' && (ip === '198.51.100.100' || ip === '2001:db8::100'),
      claimed: (ip, mac) => claims.push(`${ip}@${mac.toString('hex')}`),
      isOwnMac: (mac) => mac.equals(OTHER) && false,
    },
  );
  const cases: Array<{ name: string; run: () => HandleResult; want: HandleResult; sends: number }> = [
    {
      name: 'request for a held VIP',
      run: () => r.handleArp(req('198.51.100.100')),
      want: 'answered',
      sends: 1,
    },
    {
      name: 'request for another IP',
      run: () => r.handleArp(req('198.51.100.7')),
      want: 'not-held',
      sends: 0,
    },
    {
      name: 'our own request',
      run: () => r.handleArp(req('198.51.100.100', MAC)),
      want: 'own-frame',
      sends: 0,
    },
    {
      name: 'outgoing copy',
      run: () => r.handleArp(req('198.51.100.100'), PacketType.outgoing),
      want: 'own-frame',
      sends: 0,
    },
    {
      name: 'unicast to another host',
      run: () => r.handleArp(req('198.51.100.100'), PacketType.otherHost),
      want: 'not-for-us',
      sends: 0,
    },
    {
      name: 'a reply',
      run: () => r.handleArp(gratuitousArp(OTHER, v4('198.51.100.100'))[1]!),
      want: 'reply',
      sends: 0,
    },
    {
      name: 'a gratuitous request',
      run: () => r.handleArp(gratuitousArp(OTHER, v4('198.51.100.100'))[0]!),
      want: 'gratuitous',
      sends: 0,
    },
    { name: 'a runt', run: () => r.handleArp(Buffer.alloc(20)), want: 'short-frame', sends: 0 },
    {
      name: 'DAD NS for a held VIP',
      run: () => r.handleNdp(ndpProbe(CLIENT, VIP6)),
      want: 'answered',
      sends: 1,
    },
    { name: 'our own NS', run: () => r.handleNdp(ndpProbe(MAC, VIP6)), want: 'own-frame', sends: 0 },
    {
      name: 'NS to another host',
      run: () => r.handleNdp(ndpProbe(CLIENT, VIP6), PacketType.otherHost),
      want: 'not-for-us',
      sends: 0,
    },
    {
      name: 'NS for another IP',
      run: () => r.handleNdp(ndpProbe(CLIENT, Buffer.from('20010db8000000000000000000000007', 'hex'))),
      want: 'not-held',
      sends: 0,
    },
    { name: 'an NA', run: () => r.handleNdp(unsolicitedNa(OTHER, VIP6)), want: 'reply', sends: 0 },
    { name: 'not NDP', run: () => r.handleNdp(req('198.51.100.100')), want: 'short-frame', sends: 0 },
  ];
  for (const c of cases) {
    sent.length = 0;
    t.equal(c.run(), c.want, c.name);
    t.equal(sent.length, c.sends, `${c.name}: ${c.sends} frame(s) sent`);
  }
  t.same(
    claims,
    [
      '198.51.100.2@020000000002',
      '198.51.100.2@020000000002',
      '198.51.100.2@020000000002',
      '198.51.100.100@020000000022',
      '198.51.100.100@020000000022',
      '2001:db8::100@020000000022',
    ],
    'every sender is reported as claiming its address; our own frames are not',
  );
});
