/**
 * Hostile or broken nodes on loopback, no root: a cloned node (a second machine started from a copy of a
 * node's data directory) must not take the node's tunnel session over, and a join token must not register
 * nodes without limit.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { MemoryKv } from '../src/api/memory-kv.js';
import { ResourceStore } from '../src/api/store.js';
import type { Node } from '../src/api/types.js';
import { Informer } from '../src/controllers/informer.js';
import { NodeLifecycle, SERVER_ANNOTATION } from '../src/controllers/node-lifecycle.js';
import { SubnetController } from '../src/controllers/subnets.js';
import type { VipmeshError } from '../src/errors.js';
import { LEASE_PREFIX } from '../src/flannel-hostgw/index.js';
import { silentLogger } from '../src/log.js';
import { createRegistry } from '../src/metrics.js';
import { FakeClock } from '../src/testing/fake-clock.js';
import { tempDir } from '../src/testing/tmp.js';
import {
  createTunnelServer,
  type StandaloneOptions,
  type StandaloneTunnelServer,
} from '../src/testing/tunnel-server.js';
import { until } from '../src/testing/until.js';
import { TunnelClient, type TunnelClientOptions } from '../src/tunnel/client.js';
import { type Connection, wsConnector } from '../src/tunnel/connector.js';
import type { Session } from '../src/tunnel/session.js';
import type { WsTransport } from '../src/tunnel/ws-transport.js';

async function server(o: Partial<StandaloneOptions> = {}): Promise<StandaloneTunnelServer> {
  const srv = await createTunnelServer({
    dataDir: tempDir('vipmesh-adv-nodes-'),
    port: 0,
    host: '127.0.0.1',
    heartbeatMs: 50,
    misses: 3,
    ...o,
  });
  t.teardown(() => srv.close());
  return srv;
}

/** An agent; `conns` collects its connections (to cut one as a crash would). */
function agent(
  srv: StandaloneTunnelServer,
  o: Partial<TunnelClientOptions> = {},
): { client: TunnelClient; conns: Connection[] } {
  const conns: Connection[] = [];
  const base = wsConnector();
  const client = new TunnelClient({
    servers: [srv.url],
    token: srv.credentials.joinToken,
    caHash: srv.credentials.caHash,
    node: 'pi1',
    dataDir: tempDir('vipmesh-adv-nodes-'),
    registry: createRegistry(),
    heartbeatMs: 50,
    misses: 3,
    connector: {
      fetchCA: (url, hash, ms) => base.fetchCA(url, hash, ms),
      open: async (url, opts) => {
        const c = await base.open(url, opts);
        conns.push(c);
        return c;
      },
    },
    ...o,
  });
  t.teardown(() => client.close());
  return { client, conns };
}

t.test('a cloned node is refused while the original is alive; the original keeps its session', async (t) => {
  const registry = createRegistry();
  const srv = await server({ registry });
  const sessions: Session[] = [];
  const conflicts: string[] = [];
  srv.tunnel.on('session', (s) => sessions.push(s));
  srv.tunnel.on('conflict', ({ node, reason }) => conflicts.push(`${node}: ${reason}`));

  const dataDir = tempDir('vipmesh-adv-nodes-');
  const original = agent(srv, { dataDir });
  await original.client.connect();
  let originalLost = 0;
  original.client.on('disconnected', () => originalLost++);
  const first = srv.tunnel.sessions.get('pi1');
  t.ok(first, 'the original has a session');

  // The clone: the same node name and the same data directory (so the same node password).
  const clone = agent(srv, { dataDir });
  const refusals: VipmeshError[] = [];
  clone.client.on('refused', (e) => refusals.push(e));
  let cloneConnected = false;
  clone.client.on('connected', () => {
    cloneConnected = true;
  });
  void clone.client.connect().catch(() => {});
  await until('the clone refused three times', () => refusals.length >= 3);

  t.equal(refusals[0]!.code, 'VIPMESH_TUNNEL_NODE_IN_USE');
  t.match(refusals[0]!.message, /409: node pi1 already has a live tunnel session/);
  t.ok(Number(refusals[0]!.details['retryAfterMs']) > 0, 'the refusal says when to retry');
  t.notOk(cloneConnected, 'the clone never got a session');
  t.equal(clone.client.session, undefined);
  t.equal(srv.tunnel.sessions.get('pi1'), first, 'the original session is the one kept');
  t.equal(first!.closedReason, undefined, 'the original session is still up');
  t.equal(sessions.length, 1, 'session replacements: 0');
  t.equal(originalLost, 0, 'the original agent never lost its session');
  t.ok(conflicts.length >= 3, 'each refusal is reported by the server');
  const metrics = await registry.metrics();
  t.match(metrics, /vipmesh_tunnel_session_conflicts_total\{role="server"\} [3-9]/);
  t.ok(clone.client.metrics.conflicts >= 3, 'the refused agent counts its refusals');

  // The original crashes (kill -9): its socket is cut, no goodbye, and its loop is gone.
  const ws = (original.conns[0]!.transport as WsTransport).ws as unknown as { _socket: { destroy(): void } };
  ws._socket.destroy();
  void original.client.close();
  await until('the clone gets in once the original is gone', () => cloneConnected);
  t.not(srv.tunnel.sessions.get('pi1'), first);
  t.equal(sessions.length, 2);
});

/** One raw connection attempt as `node` (a fresh password each time: a flood of made-up nodes). */
async function tryJoin(
  srv: StandaloneTunnelServer,
  node: string,
  password = randomBytes(32).toString('hex'),
): Promise<VipmeshError | undefined> {
  try {
    const c = await wsConnector().open(srv.url, {
      ca: srv.credentials.caCertPem,
      timeoutMs: 5000,
      tcpTimeoutMs: 5000,
      headers: {
        authorization: `Bearer ${srv.credentials.joinToken}`,
        'x-vipmesh-node': node,
        'x-vipmesh-node-password': password,
      },
    });
    c.transport.close(1000, 'done');
    return undefined;
  } catch (err) {
    return err as VipmeshError;
  }
}

t.test('a flood of new node names stops at the cap; known nodes still get in', async (t) => {
  const clock = new FakeClock();
  const srv = await server({ joinLimits: { maxNewNodes: 5, newNodesWindowMs: 60_000, clock } });
  const known = randomBytes(32).toString('hex');
  t.equal(await tryJoin(srv, 'real-node', known), undefined, 'a real node joins');
  const results = [];
  for (let i = 0; i < 30; i++) results.push(await tryJoin(srv, `fake-${i}`));
  const accepted = results.filter((r) => r === undefined).length;
  t.equal(accepted, 4, 'only the cap of new names (5, the real node included) joined');
  const refusal = results.find((r) => r !== undefined)!;
  t.equal(refusal.code, 'VIPMESH_TUNNEL_JOIN_LIMIT');
  t.match(
    refusal.message,
    /429: node fake-4 cannot join now: too many new nodes: 5 joined within the last 60000 ms/,
  );
  t.ok(Number(refusal.details['retryAfterMs']) > 0, 'the refusal says when to retry');
  t.equal(await tryJoin(srv, 'real-node', known), undefined, 'a known node reconnects during the flood');
  t.equal(
    (await tryJoin(srv, 'real-node'))?.code,
    'VIPMESH_TUNNEL_NODE_PASSWORD',
    'a known name with another password is still refused as such',
  );
  clock.advance(60_000);
  t.equal(await tryJoin(srv, 'late-node'), undefined, 'a new name joins once the window has room');
});

t.test('a node count cap refuses new names beyond it', async (t) => {
  const srv = await server({ joinLimits: { maxNewNodes: 0, maxNodes: 3 } });
  for (const n of ['a', 'b', 'c']) t.equal(await tryJoin(srv, n), undefined, `${n} joins`);
  const err = await tryJoin(srv, 'd');
  t.equal(err?.code, 'VIPMESH_TUNNEL_JOIN_LIMIT');
  t.match(err?.message, /the cluster has its maximum of 3 nodes/);
});

t.test('a node NotReady past the configured time is deleted and its subnet released', async (t) => {
  const clock = new FakeClock();
  const log = silentLogger();
  const kv = new MemoryKv();
  const store = new ResourceStore({ kv, clock });
  const nodes = new Informer(store, 'nodes', { logger: log, clock });
  await nodes.start();
  t.teardown(() => nodes.close());
  const subnets = new SubnetController({ store, kv, nodes, clusterCidr: '198.18.0.0/22', logger: log });
  subnets.start();
  t.teardown(() => subnets.close());
  const sessions = new Set<string>();
  const lc = new NodeLifecycle({
    store,
    server: 's1',
    hasSession: (n) => sessions.has(n),
    nodes: () => nodes.items.values(),
    deleteNotReadyAfterMs: 3_600_000,
    logger: log,
    clock,
  });
  t.teardown(() => lc.close());
  lc.setMaster(true);
  for (const [i, name] of ['live', 'gone'].entries()) {
    sessions.add(name);
    await lc.seen(name, { addresses: [{ type: 'InternalIP', address: `198.51.100.${i + 1}` }] });
  }
  const leased = (node: string) =>
    until(`${node}'s lease`, async () =>
      (await kv.list(LEASE_PREFIX)).pairs.some((p) => p.value.toString().includes(`"${node}"`)),
    );
  await leased('live');
  await leased('gone');
  const goneCidr = (nodes.items.get('gone') as Node).spec?.podCIDR;
  t.ok(goneCidr, 'the node had a pod subnet');

  sessions.delete('gone');
  await lc.lost('gone', 'heartbeat timeout');
  await until('the informer sees gone NotReady', () =>
    nodes.items.get('gone')?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'False'),
  );
  clock.advance(3_599_000);
  await lc.sweep();
  t.ok(await store.get('nodes', 'gone'), 'still there within the time');
  clock.advance(2_000);
  await lc.sweep();
  await t.rejects(store.get('nodes', 'gone'), { code: 'VIPMESH_API_NOT_FOUND' }, 'deleted after the time');
  t.ok(await store.get('nodes', 'live'), 'the Ready node stays');
  t.equal((await store.get('nodes', 'live')).metadata.annotations?.[SERVER_ANNOTATION], 's1');
  await until('the lease of the deleted node is released', async () =>
    (await kv.list(LEASE_PREFIX)).pairs.every((p) => !p.value.toString().includes('"gone"')),
  );
  // Its subnet is free again: the next node gets it.
  sessions.add('next');
  await lc.seen('next', { addresses: [{ type: 'InternalIP', address: '198.51.100.9' }] });
  await until('next gets the released subnet', () => nodes.items.get('next')?.spec?.podCIDR === goneCidr);
});
