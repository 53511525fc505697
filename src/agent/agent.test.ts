import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import {
  type HealthReport,
  METHOD_HEALTH,
  TOPIC_PEERS,
  TOPIC_SERVICES,
  TOPIC_SERVICES_DELTA,
  TOPIC_VIPS,
  TOPIC_VIPS_DELTA,
} from '../api/agent-protocol.js';
import { VipmeshError } from '../errors.js';
import { silentLogger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { FakeClock } from '../testing/fake-clock.js';
import { lbService, TCP_CHECK } from '../testing/lb-services.js';
import { tempDir } from '../testing/tmp.js';
import { until } from '../testing/until.js';
import type { Connector } from '../tunnel/index.js';
import { Agent, type AgentAnnouncer, localRegistration } from './agent.js';
import { AgentLb } from './lb.js';

/** An announcer that holds nothing: these tests never get a session. */
class IdleAnnouncer extends EventEmitter implements AgentAnnouncer {
  readonly vips: string[] = [];
  async hold() {
    return { held: true };
  }
  async release() {
    return true;
  }
  async probe() {
    return { answered: false };
  }
  async close() {}
}

function agent(token: string, connector?: Connector, logger = silentLogger()): Agent {
  return new Agent({
    servers: ['https://a:6443'],
    token,
    nodeName: 'pi1',
    dataDir: tempDir('vipmesh-agent-'),
    registration: {},
    announcer: new IdleAnnouncer(),
    logger,
    ...(connector === undefined ? {} : { tunnel: { connector } }),
  });
}

t.test('a token not of the K10 form is refused up front', async (t) => {
  t.throws(() => agent('nope'), { code: 'VIPMESH_TUNNEL_BAD_TOKEN' });
  t.throws(() => agent(`K10${'a'.repeat(63)}::server:abcdef0123456789`), {
    code: 'VIPMESH_TUNNEL_BAD_TOKEN',
  });
});

t.test("the tunnel pins the token's CA hash and presents the token as it is", async (t) => {
  const caHash = 'b'.repeat(64);
  const token = `K10${caHash}::server:abcdef0123456789`;
  const pinned: string[] = [];
  const sent: string[] = [];
  const a = agent(token, {
    fetchCA: async (_url, hash) => {
      pinned.push(hash);
      return 'a PEM';
    },
    open: async (_url, o) => {
      sent.push(o.headers['authorization'] ?? '');
      throw new VipmeshError('VIPMESH_TUNNEL_UNAUTHORIZED', 'refused');
    },
  });
  t.teardown(() => a.close());
  await t.rejects(a.start(), { code: 'VIPMESH_TUNNEL_UNAUTHORIZED' });
  t.same(pinned, [caHash]);
  t.same(sent, [`Bearer ${token}`]);
});

t.test('localRegistration: the node IPs given, labels with the hostname label, interfaces', async (t) => {
  const r = localRegistration({ nodeName: 'pi1', nodeIps: ['198.51.100.7'], labels: { zone: 'a' } });
  t.same(
    r.addresses?.filter((a) => a.type === 'InternalIP'),
    [{ type: 'InternalIP', address: '198.51.100.7' }],
  );
  t.equal(r.labels?.['kubernetes.io/hostname'], 'pi1');
  t.equal(r.labels?.['zone'], 'a');
  t.ok(Array.isArray(r.interfaces));
  const auto = localRegistration({ nodeName: 'pi1' });
  t.ok(
    (auto.addresses ?? []).some((a) => a.type === 'InternalIP'),
    'an address is found without --node-ip',
  );
});

t.test('a clean stop logs what happens once, not "lost the server"', async (t) => {
  const lines: Array<{ msg: string; level: number }> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const a = agent(`K10${'b'.repeat(64)}::server:abcdef0123456789`, undefined, logger);
  await Promise.all([a.close(), a.close()]);
  // The tunnel reports the session it ends on close as a disconnect.
  a.client.emit('disconnected', { reason: 'agent shutting down' });
  t.same(
    lines.filter((l) => /lost the server/.test(l.msg)),
    [],
    'no warning that the server was lost',
  );
  t.equal(lines.filter((l) => /^stopping/.test(l.msg)).length, 1, 'one line saying it is stopping');
});

/** An announcer that holds what it is told and lets the test raise conflicts and probe answers. */
class HoldingAnnouncer extends EventEmitter implements AgentAnnouncer {
  readonly held = new Set<string>();
  readonly rounds: string[] = [];
  probeAnswer: { answered: boolean; mac?: string } = { answered: false };
  get vips(): string[] {
    return [...this.held];
  }
  async hold(vip: string) {
    this.held.add(vip);
    return { held: true };
  }
  async release(vip: string) {
    return this.held.delete(vip);
  }
  announce(vip: string) {
    this.rounds.push(vip);
    return this.held.has(vip);
  }
  async probe() {
    return this.probeAnswer;
  }
  async close() {}
}

const NODE_B = '02:00:00:00:00:0b';
const ATTACKER = '02:66:66:66:66:66';

async function holdingAgent(
  t: Test,
  vips: string[],
  peers: string[] | undefined,
  loadBalancer?: ConstructorParameters<typeof Agent>[0]['loadBalancer'],
) {
  const clock = new FakeClock();
  const registry = createRegistry();
  const lines: Array<{ msg: string; claims?: number }> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const ann = new HoldingAnnouncer();
  const a = new Agent({
    servers: ['https://a:6443'],
    token: `K10${'b'.repeat(64)}::server:abcdef0123456789`,
    nodeName: 'pi1',
    dataDir: tempDir('vipmesh-agent-'),
    registration: {},
    announcer: ann,
    logger,
    registry,
    clock,
    probeIntervalMs: 500,
    ...(loadBalancer === undefined ? {} : { loadBalancer }),
  });
  t.teardown(() => a.close());
  a.client.emit('connected', { server: 'https://a:6443' } as never);
  if (peers !== undefined) a.client.emit('push', TOPIC_PEERS, { macs: peers });
  a.client.emit('push', TOPIC_VIPS, { vips: vips.map((ip) => ({ ip })) });
  await a.idle();
  const claims = async () =>
    (await registry.getSingleMetricAsString('vipmesh_agent_foreign_claims_total'))
      .split('\n')
      .filter((l) => !l.startsWith('#'));
  return { a, ann, clock, lines, claims };
}

const conflict = (ann: HoldingAnnouncer, vip: string, mac: string) =>
  ann.emit('conflict', { vip, mac, iface: 'eth0', phase: 'holding' });

for (const vip of ['198.51.100.200', '2001:db8::200']) {
  t.test(
    `server lost: a spoofed claim on ${vip} keeps it and announces it again; a node's MAC takes it`,
    async (t) => {
      const { a, ann, clock, lines, claims } = await holdingAgent(t, [vip], [NODE_B, '02:00:00:00:00:01']);
      t.same(ann.vips, [vip]);
      a.client.emit('disconnected', { reason: 'server gone' } as never);
      for (let i = 0; i < 5; i++) conflict(ann, vip, ATTACKER);
      await a.idle();
      t.same(ann.vips, [vip], 'five spoofed claims: the VIP is kept');
      t.same(ann.rounds, [vip], 'announced again at once, once');
      clock.advance(1000);
      t.same(ann.rounds, [vip, vip], 'and once more a second later, after the last claim of the burst');
      clock.advance(5000);
      t.equal(ann.rounds.length, 2, 'no claim, no round');
      t.same(await claims(), [`vipmesh_agent_foreign_claims_total{vip="${vip}"} 5`]);
      const warned = lines.filter((l) => /no cluster node/.test(l.msg));
      t.equal(warned.length, 1, 'one log line for the burst, not one per frame');
      clock.advance(60_000);
      const summary = lines.filter((l) => /no cluster node/.test(l.msg));
      t.equal(summary.length, 2, 'and a summary a minute later');
      t.equal(summary[1]?.claims, 4, 'counting the four claims not yet logged');

      ann.probeAnswer = { answered: true, mac: ATTACKER };
      clock.advance(500);
      await a.idle();
      t.same(ann.vips, [vip], 'a spoofed answer to the probe takes nothing either');

      conflict(ann, vip, NODE_B.toUpperCase());
      await a.idle();
      t.same(ann.vips, [], "a claim from a cluster node's MAC (any case) still makes it release");
    },
  );
}

t.test('server lost: a probe answered by a node MAC releases the VIP', async (t) => {
  const { a, ann, clock } = await holdingAgent(t, ['198.51.100.200'], [NODE_B]);
  a.client.emit('disconnected', { reason: 'server gone' } as never);
  ann.probeAnswer = { answered: true, mac: NODE_B };
  clock.advance(500);
  await a.idle();
  t.same(ann.vips, [], 'released');
});

t.test('connected: a spoofed claim is announced over; a node claim is left to the server', async (t) => {
  const { a, ann } = await holdingAgent(t, ['198.51.100.200'], [NODE_B]);
  conflict(ann, '198.51.100.200', ATTACKER);
  conflict(ann, '198.51.100.200', NODE_B);
  await a.idle();
  t.same(ann.vips, ['198.51.100.200'], 'kept');
  t.same(ann.rounds, ['198.51.100.200'], 'one round, for the spoofed claim');
});

t.test('a server that sends no node MACs: any claim while it is lost releases, as before', async (t) => {
  const { a, ann, claims } = await holdingAgent(t, ['198.51.100.200'], undefined);
  a.client.emit('disconnected', { reason: 'server gone' } as never);
  conflict(ann, '198.51.100.200', ATTACKER);
  await a.idle();
  t.same(ann.vips, []);
  t.same(await claims(), [], 'nothing counted as foreign');
});

t.test('local VIPs (the API VIP of the master) are held beside the assigned ones', async (t) => {
  const { a, ann } = await holdingAgent(t, ['198.51.100.200'], undefined);
  a.setLocalVips(['198.51.100.100']);
  await a.idle();
  t.same([...ann.vips].sort(), ['198.51.100.100', '198.51.100.200'], 'held with the assignment');
  a.client.emit('push', TOPIC_VIPS, { vips: [{ ip: '198.51.100.201' }] });
  await a.idle();
  t.same([...ann.vips].sort(), ['198.51.100.100', '198.51.100.201'], 'a new assignment keeps it');
  a.setLocalVips([]);
  await a.idle();
  t.same(ann.vips, ['198.51.100.201'], 'released when no longer wanted');
});

t.test(
  'deltas: the set from a reset, then what is added and removed; a whole set still replaces it',
  async (t) => {
    const { a, ann } = await holdingAgent(t, ['198.51.100.200'], undefined);
    const push = async (topic: string, payload: unknown) => {
      a.client.emit('push', topic, payload);
      await a.idle();
    };
    await push(TOPIC_VIPS_DELTA, { reset: true, add: [{ ip: '198.51.100.201' }, { ip: '198.51.100.202' }] });
    t.same([...ann.vips].sort(), ['198.51.100.201', '198.51.100.202'], 'a reset: the earlier set released');
    await push(TOPIC_VIPS_DELTA, { remove: ['198.51.100.201'], add: [{ ip: '198.51.100.203' }] });
    t.same([...ann.vips].sort(), ['198.51.100.202', '198.51.100.203'], 'one removed, one added');
    await push(TOPIC_VIPS_DELTA, { remove: [42, '198.51.100.9'], add: [{ ip: 7 }, null, 'x'] });
    t.same([...ann.vips].sort(), ['198.51.100.202', '198.51.100.203'], 'malformed entries are skipped');
    await push(TOPIC_VIPS_DELTA, null);
    await push(TOPIC_VIPS, { vips: [{ ip: '198.51.100.204' }] });
    t.same(ann.vips, ['198.51.100.204'], 'a whole set (an older server) replaces it');
  },
);

t.test('a health report dropped while the server is lost is sent when the session is back', async (t) => {
  const clock = new FakeClock();
  const down = new Set<string>();
  const a = new Agent({
    servers: ['https://a:6443'],
    token: `K10${'b'.repeat(64)}::server:abcdef0123456789`,
    nodeName: 'pi1',
    dataDir: tempDir('vipmesh-agent-'),
    registration: {},
    announcer: new HoldingAnnouncer(),
    logger: silentLogger(),
    clock,
    loadBalancer: (deps) =>
      new AgentLb({
        ...deps,
        nodeName: 'pi1',
        nodeIps: ['198.51.100.2'],
        table: {
          apply: async () => ({ mode: 'diff', errors: [], nftMs: 0 }),
          start: () => {},
          remove: async () => {},
        },
        probe: async (tgt) => {
          if (down.has(tgt.ip)) throw new Error('connect ECONNREFUSED');
        },
        clock,
        logger: silentLogger(),
      }),
  });
  t.teardown(() => a.close());
  // The tunnel as the agent sees it: requests reach the server only while a session is up.
  let up = true;
  const received: HealthReport[] = [];
  const dropped: HealthReport[] = [];
  a.client.request = (async (method: string, params: unknown) => {
    if (method !== METHOD_HEALTH) return undefined;
    if (!up) {
      dropped.push(params as HealthReport);
      throw new VipmeshError('VIPMESH_TUNNEL_NO_SESSION', 'the agent has no tunnel session right now');
    }
    received.push(params as HealthReport);
    return { accepted: 1 };
  }) as typeof a.client.request;
  const unhealthy = (r: HealthReport | undefined) =>
    r?.services[0]?.endpoints.find((e) => e.ip === '198.18.1.3')?.healthy === false;

  a.client.emit('connected', { server: 'https://a:6443' } as never);
  // This node is assigned the VIP: its Service is checked and reported.
  a.client.emit('push', TOPIC_VIPS, { vips: [{ ip: '198.51.100.200' }] });
  a.client.emit('push', TOPIC_SERVICES, {
    services: [
      lbService('web', ['198.51.100.200'], ['198.18.1.2', '198.18.1.3'], {
        healthCheck: { ...TCP_CHECK, fall: 1 },
      }),
    ],
  });
  await until('the first report', () => received.length > 0);

  up = false;
  a.client.emit('disconnected', { reason: 'server gone' } as never);
  down.add('198.18.1.3');
  clock.advance(TCP_CHECK.intervalMs);
  await until('the report of the change tried and dropped', () => unhealthy(dropped.at(-1)));
  t.notOk(unhealthy(received.at(-1)), 'the server has not got it');

  up = true;
  a.client.emit('connected', { server: 'https://a:6443' } as never);
  await until('the dropped report sent on the new session, with no further change', () =>
    unhealthy(received.at(-1)),
  );
  t.pass('the server has the endpoint unhealthy');
});

t.test('Services as deltas: reset, remove and set make the list the load balancer is given', async (t) => {
  const given: string[][] = [];
  const a = new Agent({
    servers: ['https://a:6443'],
    token: `K10${'b'.repeat(64)}::server:abcdef0123456789`,
    nodeName: 'pi1',
    dataDir: tempDir('vipmesh-agent-'),
    registration: {},
    announcer: new HoldingAnnouncer(),
    logger: silentLogger(),
    clock: new FakeClock(),
    loadBalancer: () => ({
      setServices: (s) => void given.push(s.map((x) => x.name)),
      setLeases: () => undefined,
      setHeld: () => undefined,
      allows: () => true,
      resend: () => undefined,
      close: async () => undefined,
    }),
  });
  t.teardown(() => a.close());
  const web = lbService('web', ['198.51.100.200'], []);
  const dns = lbService('dns', ['198.51.100.201'], []);
  const push = async (payload: unknown) => {
    a.client.emit('push', TOPIC_SERVICES_DELTA, payload);
    await new Promise((r) => setImmediate(r));
  };
  // Two messages in one burst: the load balancer is given the list once.
  a.client.emit('push', TOPIC_SERVICES_DELTA, { reset: true, set: [web] });
  a.client.emit('push', TOPIC_SERVICES_DELTA, { set: [dns] });
  await new Promise((r) => setImmediate(r));
  t.same(given, [['dns', 'web']], 'both, sorted, in one call');
  await push({ remove: ['default/web'], set: [{ ...dns, ports: [] }] });
  t.same(given.at(-1), ['dns'], 'web removed');
  await push({ set: [null, 7, { name: 'x' }], remove: [42] });
  t.same(given.at(-1), ['dns'], 'malformed entries are skipped');
  await push({ reset: true });
  t.same(given.at(-1), [], 'a reset with nothing: an empty list');
  a.client.emit('push', TOPIC_SERVICES, { services: [web] });
  await new Promise((r) => setImmediate(r));
  t.same(given.at(-1), ['web'], 'a whole list (an older server) replaces it');
});

t.test(
  'a VIP moved to another node is answered for until that node announces it, at most the hand-over timeout',
  async (t) => {
    const { a, ann, clock, lines } = await holdingAgent(t, [], [NODE_B]);
    const push = async (payload: unknown) => {
      a.client.emit('push', TOPIC_VIPS_DELTA, payload);
      await a.idle();
    };
    const ip = (n: number) => `198.51.100.${n}`;
    await push({ reset: true, add: [201, 202, 203, 204].map((n) => ({ ip: ip(n) })) });
    t.same(ann.vips.length, 4);

    await push({ remove: [ip(201), ip(202)], moved: [ip(201)] });
    t.notOk(ann.held.has(ip(202)), 'a VIP with no new holder is released at once');
    t.ok(ann.held.has(ip(201)), 'a moved VIP is still answered for');
    conflict(ann, ip(201), ATTACKER);
    await a.idle();
    t.ok(ann.held.has(ip(201)), 'a claim from a MAC that is no node does not end it');
    conflict(ann, ip(201), NODE_B);
    await a.idle();
    t.notOk(ann.held.has(ip(201)), "the new holder's announcement releases it");

    await push({ remove: [ip(203)], moved: [ip(203)] });
    clock.advance(4999);
    await a.idle();
    t.ok(ann.held.has(ip(203)), 'unheard new holder: still answered for just before the timeout');
    clock.advance(1);
    await a.idle();
    t.notOk(ann.held.has(ip(203)), 'released at the timeout');
    t.ok(
      lines.some((l) => /no announcement from the new holder/.test(l.msg)),
      'with a warning',
    );

    await push({ remove: [ip(204)], moved: [ip(204)] });
    await push({ add: [{ ip: ip(204) }] });
    clock.advance(5000);
    conflict(ann, ip(204), NODE_B);
    await a.idle();
    t.ok(ann.held.has(ip(204)), 'moved back before it was let go: kept, whatever is heard after');

    a.client.emit('disconnected', { reason: 'server gone' } as never);
    await push({ remove: [ip(204)], moved: [ip(204)] });
    t.notOk(ann.held.has(ip(204)), 'without a server, a removal is not held on to');
  },
);

t.test('while a moved VIP is handed off, its Service is still served on it, then dropped', async (t) => {
  const given: Array<Array<[string, string[]]>> = [];
  const { a, ann, clock } = await holdingAgent(t, [], [NODE_B], () => ({
    setServices: (s) => void given.push(s.map((x) => [x.name, x.vips])),
    setLeases: () => undefined,
    setHeld: () => undefined,
    allows: () => true,
    resend: () => undefined,
    close: async () => undefined,
  }));
  const burst = async (...msgs: Array<[string, unknown]>) => {
    for (const [topic, payload] of msgs) a.client.emit('push', topic, payload);
    await a.idle();
    await new Promise((r) => setImmediate(r));
  };
  const V1 = '198.51.100.200';
  const V2 = '198.51.100.201';
  await burst(
    [TOPIC_VIPS_DELTA, { reset: true, add: [{ ip: V1 }, { ip: V2 }] }],
    [TOPIC_SERVICES_DELTA, { reset: true, set: [lbService('web', [V1, V2], [])] }],
  );
  t.same(given.at(-1), [['web', [V1, V2]]]);
  // V1 moves to node B: the server sends the removal (moved), then web with V2 only.
  await burst(
    [TOPIC_VIPS_DELTA, { remove: [V1], moved: [V1] }],
    [TOPIC_SERVICES_DELTA, { set: [lbService('web', [V2], [])] }],
  );
  t.ok(ann.held.has(V1), 'V1 still answered for');
  t.same(given.at(-1), [['web', [V2, V1]]], 'and web still served on it');
  conflict(ann, V1, NODE_B);
  await a.idle();
  await new Promise((r) => setImmediate(r));
  t.notOk(ann.held.has(V1), "released on the new holder's announcement");
  t.same(given.at(-1), [['web', [V2]]], 'and web no longer served on it');
  // V2 moves too and web leaves this node altogether: kept until the timeout, then gone.
  await burst(
    [TOPIC_VIPS_DELTA, { remove: [V2], moved: [V2] }],
    [TOPIC_SERVICES_DELTA, { remove: ['default/web'] }],
  );
  t.same(given.at(-1), [['web', [V2]]], 'a Service removed here is kept for the VIP being handed off');
  clock.advance(5000);
  await a.idle();
  await new Promise((r) => setImmediate(r));
  t.same(given.at(-1), [], 'gone once the VIP is let go');
});
