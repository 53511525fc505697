import { pino } from 'pino';
import t from 'tap';
import { type Logger, silentLogger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { FakeClock } from '../testing/fake-clock.js';
import { formatIpBytes, type IpAddr } from '../util/ip.js';
import { formatMac, parseMac } from './addr.js';
import { Announcer, type AnnouncerOptions, type ConflictEvent } from './announcer.js';
import { ArpOp, decodeArp, encodeArp, gratuitousArp } from './codec.js';
import { decodeNdp, encodeNdp, unsolicitedNa } from './ndp.js';
import type { LinkInfo } from './netlink.js';
import type { FrameHandler } from './packet-socket.js';

const MAC0 = parseMac('02:00:00:00:00:11')!;
const PEER = parseMac('02:00:00:00:00:99')!;
const CLIENT = parseMac('02:00:00:00:00:02')!;
const v4 = (s: string) => Buffer.from(s.split('.').map(Number));

function link(name: string, index: number, mac: Buffer, extra: Partial<LinkInfo> = {}): LinkInfo {
  return {
    index,
    name,
    mac,
    up: true,
    broadcast: true,
    noarp: false,
    loopback: false,
    member: false,
    ...extra,
  };
}

class FakeSocket {
  sent: Buffer[] = [];
  groups: string[] = [];
  closed = false;
  constructor(readonly onFrame: FrameHandler) {}
  send(f: Buffer) {
    this.sent.push(f);
  }
  addMembership(mac: Buffer) {
    this.groups.push(formatMac(mac));
  }
  dropMembership(mac: Buffer) {
    this.groups.splice(this.groups.indexOf(formatMac(mac)), 1);
  }
  close() {
    this.closed = true;
  }
}

function rig(
  opts: AnnouncerOptions = {},
  links: LinkInfo[] = [link('eth0', 2, MAC0)],
  stale: string[] = [],
  logger: Logger = silentLogger(),
) {
  const clock = new FakeClock();
  const registry = createRegistry();
  const state = {
    links,
    onChange: () => {},
    addrs: new Set<string>(stale),
    sysctl: [] as string[],
    ports: new Map<string, { arp: FakeSocket; ndp: FakeSocket }>(),
    linksClosed: false,
  };
  const announcer = new Announcer(
    {
      links: {
        list: async () => state.links,
        subscribe: (cb) => {
          state.onChange = cb;
        },
        close: () => {
          state.linksClosed = true;
        },
      },
      addresses: {
        add: async (ip: IpAddr) => void state.addrs.add(ip.text),
        remove: async (ip: IpAddr) => void state.addrs.delete(ip.text),
        listOurs: async () => [...state.addrs].map((text) => ({ text, bytes: v4(text), family: 4 as const })),
      },
      sysctl: {
        apply: (i) => void state.sysctl.push(`apply ${i}`),
        restore: (i) => void state.sysctl.push(`restore ${i}`),
        restoreAll: () => void state.sysctl.push('restoreAll'),
      },
      openPort: (port, onArp, onNdp) => {
        const p = { arp: new FakeSocket(onArp), ndp: new FakeSocket(onNdp) };
        state.ports.set(port.name, p);
        return p;
      },
      clock,
      logger,
      registry,
    },
    opts,
  );
  const conflicts: ConflictEvent[] = [];
  announcer.on('conflict', (c) => conflicts.push(c));
  return { announcer, clock, registry, state, conflicts };
}

/** Let the announcer's awaits run, moving the fake clock `ms` forward in small steps. */
async function settle(clock: FakeClock, ms = 0): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
  for (let done = 0; done < ms; done += 10) {
    clock.advance(Math.min(10, ms - done));
    for (let i = 0; i < 10; i++) await Promise.resolve();
  }
}

function arpRequest(tpa: string, from = CLIENT, spa = '198.51.100.2'): Buffer {
  return encodeArp({
    ethDst: Buffer.alloc(6, 0xff),
    ethSrc: from,
    op: ArpOp.request,
    sha: from,
    spa: v4(spa),
    tha: Buffer.alloc(6),
    tpa: v4(tpa),
  });
}

function arpOps(frames: Buffer[]) {
  return frames.map((f) => {
    const p = decodeArp(f);
    if (typeof p === 'string') throw new Error(p);
    return {
      op: p.op,
      spa: formatIpBytes(p.spa),
      tpa: formatIpBytes(p.tpa),
      sha: formatMac(p.sha),
      dst: formatMac(p.ethDst),
    };
  });
}

t.test('start removes stale VIPs and opens only eligible interfaces', async (t) => {
  const { announcer, state } = rig(
    {},
    [
      link('lo', 1, Buffer.alloc(6), { loopback: true, broadcast: false }),
      link('eth0', 2, MAC0),
      link('eth1', 3, PEER, { member: true }),
      link('eth2', 4, PEER, { up: false }),
      link('tun0', 5, Buffer.alloc(0), { broadcast: false, noarp: true }),
    ],
    ['198.51.100.250'],
  );
  await announcer.start();
  t.same(announcer.interfaces, ['eth0']);
  t.same([...state.addrs], [], 'the VIP a crashed run left is removed');
  t.same(state.sysctl, ['apply eth0']);
  await announcer.close();
});

t.test('VIPs taken together: every first frame goes out before any second one', async (t) => {
  const { announcer, state } = rig();
  await announcer.start();
  const vips = ['198.51.100.100', '198.51.100.101', '198.51.100.102'];
  await Promise.all(vips.map((v) => announcer.hold(v, undefined, { probe: false })));
  const port = state.ports.get('eth0')!;
  t.same(
    arpOps(port.arp.sent).map((p) => [p.op, p.spa]),
    vips.map((v) => [1, v]),
    'a request for each VIP as it is taken',
  );
  await new Promise((resolve) => setImmediate(resolve));
  t.same(
    arpOps(port.arp.sent).map((p) => [p.op, p.spa, p.dst]),
    [...vips.map((v) => [1, v, 'ff:ff:ff:ff:ff:ff']), ...vips.map((v) => [2, v, 'ff:ff:ff:ff:ff:ff'])],
    'then the replies, at the end of the turn',
  );
  await announcer.release('198.51.100.101');
  port.arp.sent = [];
  await announcer.hold('198.51.100.101', undefined, { probe: false });
  await announcer.release('198.51.100.101');
  await new Promise((resolve) => setImmediate(resolve));
  t.same(
    arpOps(port.arp.sent).map((p) => p.op),
    [1],
    'no reply for a VIP let go before the end of the turn',
  );
  await announcer.close();
});

t.test('hold probes, adds the VIP, answers, and sends gratuitous rounds on the schedule', async (t) => {
  const { announcer, clock, state, registry } = rig();
  await announcer.start();
  const held = announcer.hold('198.51.100.100');
  await settle(clock);
  const port = state.ports.get('eth0')!;
  t.same(
    arpOps(port.arp.sent).map((p) => [p.spa, p.tpa]),
    [['0.0.0.0', '198.51.100.100']],
    'an ARP probe first',
  );
  await settle(clock, 100);
  t.same(await held, { held: true });
  t.ok(state.addrs.has('198.51.100.100'), 'VIP on lo');
  port.arp.sent = [];
  await settle(clock, 0);
  const rounds: number[] = [];
  let last = 0;
  for (let ms = 0; ms < 10_000; ms += 10) {
    clock.advance(10);
    if (port.arp.sent.length > last) rounds.push(ms + 10);
    last = port.arp.sent.length;
  }
  t.same(rounds.length, 3, 'three more rounds after the first');
  t.ok(rounds[1]! >= 1000 && rounds[1]! <= 1100, 'a round lands past the 1 s locktime');
  t.equal(port.arp.sent.length, 6, 'a request and a reply per round');
  const [req, rep] = arpOps(port.arp.sent.slice(0, 2));
  t.same([req!.op, rep!.op], [1, 2]);
  t.equal(req!.spa, '198.51.100.100');

  port.arp.sent = [];
  port.arp.onFrame(arpRequest('198.51.100.100'), 1);
  port.arp.onFrame(arpRequest('198.51.100.7'), 1);
  const answers = arpOps(port.arp.sent);
  t.equal(answers.length, 1, 'only the held VIP is answered');
  t.same(answers[0], {
    op: 2,
    spa: '198.51.100.100',
    tpa: '198.51.100.2',
    sha: formatMac(MAC0),
    dst: formatMac(CLIENT),
  });
  const text = await registry.metrics();
  t.match(text, /vipmesh_arp_requests_received_total\{family="4",iface="eth0"\} 2/);
  t.match(text, /vipmesh_arp_replies_sent_total\{family="4",iface="eth0"\} 1/);
  t.match(text, /vipmesh_arp_gratuitous_sent_total\{vip="198.51.100.100"\} 8/);
  t.match(text, /vipmesh_arp_frames_dropped_total\{reason="not-held"\} 1/);

  t.equal(await announcer.release('198.51.100.100'), true);
  t.notOk(state.addrs.has('198.51.100.100'), 'VIP off lo');
  port.arp.sent = [];
  port.arp.onFrame(arpRequest('198.51.100.100'), 1);
  t.equal(port.arp.sent.length, 0, 'no answer once released');
  t.equal(await announcer.release('198.51.100.100'), false);
  await announcer.close();
});

t.test('a probe answered by another MAC is a conflict and the VIP is not taken', async (t) => {
  const { announcer, clock, state, conflicts, registry } = rig();
  await announcer.start();
  const held = announcer.hold('198.51.100.100');
  await settle(clock, 20);
  const port = state.ports.get('eth0')!;
  const [, reply] = gratuitousArp(PEER, v4('198.51.100.100'));
  port.arp.onFrame(reply!, 1);
  const r = await held;
  t.same(r, {
    held: false,
    conflict: { vip: '198.51.100.100', mac: formatMac(PEER), iface: 'eth0', phase: 'probe' },
  });
  t.same(
    conflicts.map((c) => c.phase),
    ['probe'],
  );
  t.notOk(state.addrs.has('198.51.100.100'));
  t.equal(arpOps(port.arp.sent).filter((p) => p.spa === '198.51.100.100').length, 0, 'no gratuitous ARP');
  t.match(await registry.metrics(), /vipmesh_arp_conflicts_total\{vip="198.51.100.100"\} 1/);
  await announcer.close();
});

t.test('while holding, another MAC claiming the VIP raises a conflict; our own frames do not', async (t) => {
  const { announcer, clock, state, conflicts } = rig({ probeTimeoutMs: 0 });
  await announcer.start();
  t.same(await announcer.hold('198.51.100.100'), { held: true });
  const port = state.ports.get('eth0')!;
  const [req] = gratuitousArp(PEER, v4('198.51.100.100'));
  port.arp.onFrame(req!, 1);
  port.arp.onFrame(gratuitousArp(MAC0, v4('198.51.100.100'))[0]!, 1);
  port.arp.onFrame(arpRequest('198.51.100.100', PEER, '198.51.100.100'), 1);
  t.same(
    conflicts.map((c) => [c.phase, c.mac]),
    [
      ['holding', formatMac(PEER)],
      ['holding', formatMac(PEER)],
    ],
  );
  const r = await Promise.all([
    announcer.probe('198.51.100.100'),
    (async () => {
      await settle(clock, 10);
      port.arp.onFrame(
        encodeArp({
          ethDst: MAC0,
          ethSrc: PEER,
          op: 2,
          sha: PEER,
          spa: v4('198.51.100.100'),
          tha: MAC0,
          tpa: Buffer.alloc(4),
        }),
        0,
      );
    })(),
  ]);
  t.same(r[0], { answered: true, mac: formatMac(PEER), iface: 'eth0' }, 'probe() reports the other MAC');
  const quiet = announcer.probe('198.51.100.100');
  await settle(clock, 150);
  t.same(await quiet, { answered: false });
  await announcer.close();
});

t.test(
  'IPv6: unsolicited NA, solicited-node membership, NS answered, membership dropped on release',
  async (t) => {
    const { announcer, clock, state } = rig({ probeTimeoutMs: 0, scheduleMs: [0] });
    await announcer.start();
    await announcer.hold('2001:db8::100');
    const port = state.ports.get('eth0')!;
    t.same(port.ndp.groups, ['33:33:ff:00:01:00']);
    const na = decodeNdp(port.ndp.sent[0]!);
    if (typeof na === 'string') throw new Error(na);
    t.equal(formatIpBytes(na.target), '2001:db8::100');
    t.equal(na.flags?.override, true);
    port.ndp.sent = [];
    const ns = encodeNdp({
      type: 135,
      ethDst: parseMac('33:33:ff:00:01:00')!,
      ethSrc: CLIENT,
      src: Buffer.from('20010db8000000000000000000000002', 'hex'),
      dst: Buffer.from('ff0200000000000000000001ff000100', 'hex'),
      target: Buffer.from('20010db8000000000000000000000100', 'hex'),
      lladdr: CLIENT,
    });
    port.ndp.onFrame(ns, 2);
    const reply = decodeNdp(port.ndp.sent[0]!);
    if (typeof reply === 'string') throw new Error(reply);
    t.equal(formatMac(reply.lladdr!), formatMac(MAC0));
    t.equal(formatIpBytes(reply.dst), '2001:db8::2');
    // An NA from another MAC for our VIP is a conflict.
    const conflicts: string[] = [];
    announcer.on('conflict', (c) => conflicts.push(c.mac));
    port.ndp.onFrame(unsolicitedNa(PEER, Buffer.from('20010db8000000000000000000000100', 'hex')), 2);
    t.same(conflicts, [formatMac(PEER)]);
    await announcer.release('2001:db8::100');
    t.same(port.ndp.groups, []);
    clock.advance(5000);
    await announcer.close();
  },
);

t.test(
  'link events: a new interface is announced on, a MAC change re-announces, a vanished one is closed',
  async (t) => {
    const { announcer, clock, state } = rig({ probeTimeoutMs: 0, scheduleMs: [0] });
    await announcer.start();
    await announcer.hold('198.51.100.100');
    const eth0 = state.ports.get('eth0')!;
    state.links = [link('eth0', 2, PEER), link('eth1', 3, parseMac('02:00:00:00:00:33')!)];
    eth0.arp.sent = [];
    state.onChange();
    state.onChange();
    await settle(clock, 10);
    t.same(announcer.interfaces.sort(), ['eth0', 'eth1']);
    t.same(
      arpOps(eth0.arp.sent).map((p) => p.sha),
      [formatMac(PEER), formatMac(PEER)],
      'gratuitous round with the new MAC',
    );
    const eth1 = state.ports.get('eth1')!;
    t.equal(arpOps(eth1.arp.sent).length, 2, 'held VIPs are announced on the new interface');
    eth0.arp.sent = [];
    eth0.arp.onFrame(arpRequest('198.51.100.100'), 1);
    t.equal(arpOps(eth0.arp.sent)[0]?.sha, formatMac(PEER), 'answers carry the new MAC');
    state.links = [link('eth1', 3, parseMac('02:00:00:00:00:33')!)];
    state.onChange();
    await settle(clock, 10);
    t.same(announcer.interfaces, ['eth1']);
    t.ok(eth0.arp.closed && eth0.ndp.closed, 'sockets of the vanished interface are closed');
    t.ok(state.sysctl.includes('restore eth0'));
    await announcer.close();
    t.ok(eth1.arp.closed);
    t.ok(state.linksClosed);
    t.same(state.sysctl.at(-1), 'restoreAll');
    t.same([...state.addrs], [], 'close releases every VIP');
    await t.rejects(announcer.hold('198.51.100.101'), { code: 'VIPMESH_ARP_CLOSED' });
  },
);

t.test('explicit interfaces, refresh, bad input', async (t) => {
  const missing = rig({ interfaces: ['eth7'] });
  await t.rejects(missing.announcer.start(), { code: 'VIPMESH_ARP_NO_INTERFACE' });
  const { announcer, clock, state } = rig(
    { interfaces: ['eth1'], probeTimeoutMs: 0, scheduleMs: [0], refreshIntervalMs: 1000 },
    [link('eth0', 2, MAC0), link('eth1', 3, PEER, { member: true })],
  );
  await announcer.start();
  t.same(announcer.interfaces, ['eth1'], 'an explicit list overrides the eligibility rule');
  await t.rejects(announcer.hold('198.51.100.100', 'eth0'), { code: 'VIPMESH_ARP_NO_INTERFACE' });
  await t.rejects(announcer.hold('not-an-ip'), { code: 'VIPMESH_ARP_BAD_VIP' });
  await announcer.hold('198.51.100.100', 'eth1');
  t.same(await announcer.hold('198.51.100.100'), { held: true }, 'holding twice is fine');
  t.ok(announcer.shouldAnnounce('198.51.100.100', 'eth1'));
  t.notOk(announcer.shouldAnnounce('198.51.100.100', 'eth0'));
  const port = state.ports.get('eth1')!;
  port.arp.sent = [];
  clock.advance(3500);
  t.equal(port.arp.sent.length, 6, 'a refresh round every second');
  t.equal(announcer.announce('198.51.100.100'), true);
  t.equal(announcer.announce('198.51.100.101'), false);
  t.same(announcer.vips, ['198.51.100.100']);
  await announcer.close();
  await announcer.close();
  port.arp.sent = [];
  clock.advance(5000);
  t.equal(port.arp.sent.length, 0, 'no rounds after close');
});

t.test(
  'close says once what happened: VIPs released, interfaces left; no "interface gone or down"',
  async (t) => {
    const lines: Array<{ msg: string; level: number; released?: string[]; ifaces?: string[] }> = [];
    const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const { announcer, clock } = rig({}, [link('eth0', 2, MAC0), link('eth1', 3, PEER)], [], logger);
    await announcer.start();
    const downs: unknown[] = [];
    announcer.on('interface-down', (e) => downs.push(e));
    const held = announcer.hold('198.51.100.100');
    await settle(clock, 5000);
    await held;
    lines.length = 0;
    await announcer.close();
    t.same(
      lines.filter((l) => /interface gone or down/.test(l.msg)),
      [],
      'a clean close does not claim the interfaces went away',
    );
    t.same(downs, [], 'and emits no interface-down');
    const closed = lines.filter((l) => /announcer closed/.test(l.msg));
    t.equal(closed.length, 1, 'one line for the close');
    t.same(closed[0]?.released, ['198.51.100.100']);
    t.same(closed[0]?.ifaces, ['eth0', 'eth1']);
  },
);
