import type { NetworkInterfaceInfo } from 'node:os';
import t from 'tap';
import { VipmeshError } from '../errors.js';
import { silentLogger } from '../log.js';
import { FakeClock } from '../testing/fake-clock.js';
import { decodeArp } from './codec.js';
import { decodeNdp } from './ndp.js';
import { LinkNeighbourProbe, MAX_PROBE_TARGETS, onLinkTarget, type ProbeTarget } from './neighbour-probe.js';
import type { FrameSocket } from './packet-socket.js';

const MAC = '02:00:00:00:00:02';
const v4 = (address: string, cidr: string, mac = MAC): NetworkInterfaceInfo => ({
  address,
  netmask: '',
  family: 'IPv4',
  mac,
  internal: false,
  cidr,
});
const v6 = (address: string, cidr: string): NetworkInterfaceInfo => ({
  address,
  netmask: '',
  family: 'IPv6',
  mac: MAC,
  internal: false,
  cidr,
  scopeid: 0,
});
const IFACES = {
  lo: [
    { ...v4('127.0.0.1', '127.0.0.1/8', '00:00:00:00:00:00'), internal: true },
    { ...v4('198.51.100.100', '198.51.100.100/32', '00:00:00:00:00:00'), internal: true },
  ],
  eth0: [
    v4('198.51.100.2', '198.51.100.2/25'),
    v6('2001:db8::2', '2001:db8::2/64'),
    v6('fe80::2', 'fe80::2/64'),
  ],
  wg0: [v4('198.51.100.130', '198.51.100.130/25', '00:00:00:00:00:00')],
};

t.test('a server on a local link gets a request from our address there; anything else none', async (t) => {
  const arp = onLinkTarget('198.51.100.1', IFACES)!;
  t.match(arp, { ip: '198.51.100.1', ifname: 'eth0', family: 4 });
  const req = decodeArp(arp.frame);
  if (typeof req === 'string') throw new Error(req);
  t.same(
    [
      req.op,
      req.ethDst.toString('hex'),
      req.sha.toString('hex'),
      [...req.spa].join('.'),
      [...req.tpa].join('.'),
    ],
    [1, 'ffffffffffff', '020000000002', '198.51.100.2', '198.51.100.1'],
    'broadcast who-has 198.51.100.1 tell 198.51.100.2 at our MAC',
  );

  const ns = onLinkTarget('[2001:db8::1]', IFACES)!;
  t.match(ns, { ip: '2001:db8::1', ifname: 'eth0', family: 6 });
  const pkt = decodeNdp(ns.frame);
  if (typeof pkt === 'string') throw new Error(pkt);
  t.equal(pkt.type, 135, 'a Neighbor Solicitation');
  t.equal(pkt.target.toString('hex'), '20010db8000000000000000000000001');
  t.equal(pkt.src.toString('hex'), '20010db8000000000000000000000002', 'from our address on that link');
  t.equal(pkt.ethDst.toString('hex'), '3333ff000001', "to the target's solicited-node group");
  t.equal(pkt.lladdr?.toString('hex'), '020000000002', 'with our link-layer address');

  for (const host of [
    '203.0.113.9',
    'server.example',
    '127.0.0.1',
    '198.51.100.2',
    'fe80::1',
    '198.51.100.140',
  ]) {
    t.equal(onLinkTarget(host, IFACES), undefined, `${host}: no probe`);
  }
});

/** Sockets that record what they send; `failOpen` makes opening throw. */
function fakeSockets(failOpen?: Error) {
  const sent: Array<{ ifname: string; frame: Buffer }> = [];
  const open: string[] = [];
  let closed = 0;
  return {
    sent,
    open,
    get closed() {
      return closed;
    },
    factory(ifname: string, family: number): FrameSocket {
      if (failOpen !== undefined) throw failOpen;
      open.push(`${ifname}/${family}`);
      return {
        send: (frame) => sent.push({ ifname, frame }),
        addMembership() {},
        dropMembership() {},
        close: () => {
          closed++;
        },
      };
    },
  };
}

const target = (ip: string, ifname = 'eth0'): ProbeTarget => ({
  ip,
  ifname,
  family: 4,
  frame: Buffer.from(ip),
});

t.test('probes every 100 ms while started, every second after a minute, nothing once stopped', async (t) => {
  const clock = new FakeClock();
  const socks = fakeSockets();
  const p = new LinkNeighbourProbe({
    targets: () => [target('198.51.100.1'), target('198.51.100.3')],
    open: (i, f) => socks.factory(i, f),
    clock,
    logger: silentLogger(),
  });
  p.start();
  p.start(); // a second start does not double the rate
  t.equal(socks.sent.length, 2, 'one frame per target at once');
  clock.advance(1000);
  t.equal(socks.sent.length, 22, '10 more rounds in the first second');
  t.same(socks.open, ['eth0/4'], 'one socket per interface and family');
  clock.advance(59_000);
  const atMinute = socks.sent.length;
  clock.advance(10_000);
  t.equal(socks.sent.length - atMinute, 20, 'one round a second after the first minute');
  p.stop();
  t.equal(socks.closed, 1, 'the socket is closed on stop');
  t.equal(clock.pending, 0, 'no timer left');
  const n = socks.sent.length;
  clock.advance(10_000);
  t.equal(socks.sent.length, n, 'nothing sent while stopped');
  p.start();
  t.equal(socks.sent.length, n + 2, 'a new start probes at once, at the fast rate again');
  clock.advance(100);
  t.equal(socks.sent.length, n + 4);
  p.stop();
});

t.test('at most 8 targets; none known, nothing started; a cut link keeps the last ones known', async (t) => {
  const clock = new FakeClock();
  const socks = fakeSockets();
  let targets: ProbeTarget[] = [];
  const p = new LinkNeighbourProbe({
    targets: () => targets,
    open: (i, f) => socks.factory(i, f),
    clock,
    logger: silentLogger(),
  });
  p.start();
  t.notOk(p.running, 'no on-link server: off');
  t.equal(clock.pending, 0);
  t.equal(socks.open.length, 0, 'no socket opened');
  targets = Array.from({ length: 20 }, (_, i) => target(`198.51.100.${i + 1}`));
  p.start();
  t.equal(socks.sent.length, MAX_PROBE_TARGETS, 'one frame each for the first 8');
  p.stop();
  // The cable is out: the interface drops out of the lookup.
  targets = [];
  p.start();
  t.ok(p.running, 'probes the targets it knew');
  t.equal(socks.sent.length, 2 * MAX_PROBE_TARGETS);
  p.stop();
});

t.test('without CAP_NET_RAW it gives up for good, quietly; other errors skip a round', async (t) => {
  const clock = new FakeClock();
  const denied = new VipmeshError('VIPMESH_ARP_PERMISSION', 'needs CAP_NET_RAW');
  const p = new LinkNeighbourProbe({
    targets: () => [target('198.51.100.1')],
    open: () => {
      throw denied;
    },
    clock,
    logger: silentLogger(),
  });
  p.start();
  t.notOk(p.running, 'stopped');
  t.equal(clock.pending, 0, 'no timer');
  p.start();
  t.notOk(p.running, 'and stays off');

  let fail = true;
  const socks = fakeSockets();
  const q = new LinkNeighbourProbe({
    targets: () => [target('198.51.100.1')],
    open: (i, f) => {
      if (fail) throw new VipmeshError('VIPMESH_ARP_NO_INTERFACE', 'gone');
      return socks.factory(i, f);
    },
    clock,
    logger: silentLogger(),
  });
  q.start();
  t.ok(q.running, 'an interface that is not there yet is tried again');
  fail = false;
  clock.advance(100);
  t.equal(socks.sent.length, 1, 'next round it probes');
  q.stop();
});
