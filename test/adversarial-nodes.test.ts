/**
 * Hostile or broken nodes on loopback, no root: a cloned node (a second machine started from a copy of a
 * node's data directory) must not take the node's tunnel session over, and a join token must not register
 * nodes without limit.
 */
import t from 'tap';
import type { VipmeshError } from '../src/errors.js';
import { createRegistry } from '../src/metrics.js';
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
