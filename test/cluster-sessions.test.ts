/**
 * A node's session across two servers on one datastore (loopback): a clone connected to the second server
 * while the original holds a session on the first is refused as on one server (409, the
 * NodeIdentityConflict event, the conflicts metric); when the original's link breaks, or a server dies and
 * its lease expires, the node gets in on the other server.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import t from 'tap';
import type { Event } from '../src/api/index.js';
import type { VipmeshError } from '../src/errors.js';
import { startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { createRegistry } from '../src/metrics.js';
import { type RunningServer, startServer } from '../src/server/index.js';
import { SESSIONS_PREFIX } from '../src/server/session-claims.js';
import { tempDir } from '../src/testing/tmp.js';
import { until } from '../src/testing/until.js';
import { TunnelClient } from '../src/tunnel/client.js';
import { type Connection, wsConnector } from '../src/tunnel/connector.js';
import type { WsTransport } from '../src/tunnel/ws-transport.js';

const dir = mkdtempSync(join(tmpdir(), 'vipmesh-sessions-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const ds = await startDatastore({
  dataDir: join(dir, 'etcd'),
  listenAddress: '127.0.0.1:0',
  logger: silentLogger(),
});
t.teardown(() => ds.close());

function server(name: string): Promise<RunningServer> {
  return startServer({
    dataDir: join(dir, name),
    nodeName: name,
    httpsListenPort: 0,
    bindAddress: '127.0.0.1',
    clusterCidr: ['198.18.0.0/16'],
    datastoreEndpoint: ds.url,
    heartbeatMs: 50,
    nodeLostAfter: 3,
    nodeGraceMs: 500,
    electionTtlSeconds: 1,
    logger: silentLogger(),
  });
}

const s1 = await server('s1');
const s2 = await server('s2');
t.teardown(async () => {
  await s2.close();
  await s1.close();
});

/** An agent's tunnel client to `srv`; `conns` collects its connections (to cut one as a broken link would). */
function agent(srv: RunningServer, node: string, dataDir: string) {
  const conns: Connection[] = [];
  const base = wsConnector();
  const refusals: VipmeshError[] = [];
  const client = new TunnelClient({
    servers: [srv.url],
    token: srv.credentials.joinToken,
    caHash: srv.credentials.caHash,
    node,
    dataDir,
    registry: createRegistry(),
    heartbeatMs: 50,
    misses: 3,
    backoffCapMs: 1000,
    connector: {
      fetchCA: (url, hash, ms) => base.fetchCA(url, hash, ms),
      open: async (url, opts) => {
        const c = await base.open(url, opts);
        conns.push(c);
        return c;
      },
    },
  });
  client.on('refused', (e) => refusals.push(e));
  t.teardown(() => client.close());
  return { client, conns, refusals };
}

const holderKey = async (etcd: Etcd3, node: string) => etcd.get(`${SESSIONS_PREFIX}${node}`).string();

t.test(
  'a clone on the second server is refused while the original holds a session on the first',
  async (t) => {
    const etcd = new Etcd3({ hosts: ds.url });
    t.teardown(() => etcd.close());
    const dataDir = tempDir('vipmesh-sessions-');
    const original = agent(s1, 'pi1', dataDir);
    await original.client.connect();
    const first = s1.tunnel.sessions.get('pi1');
    t.ok(first, 'the original has a session on s1');
    t.match(JSON.parse((await holderKey(etcd, 'pi1')) ?? '{}'), { server: 's1' }, 'its key names s1');

    const conflicts: string[] = [];
    s2.tunnel.on('conflict', ({ reason }) => conflicts.push(reason));
    // The clone: the same name and data directory, connected to the other server.
    const clone = agent(s2, 'pi1', dataDir);
    let cloneUp = false;
    clone.client.on('connected', () => {
      cloneUp = true;
    });
    void clone.client.connect().catch(() => {});
    await until('the clone refused twice', () => clone.refusals.length >= 2);
    t.equal(clone.refusals[0]!.code, 'VIPMESH_TUNNEL_NODE_IN_USE');
    t.match(clone.refusals[0]!.message, /409: node pi1 already has a live tunnel session on server s1/);
    t.ok(Number(clone.refusals[0]!.details['retryAfterMs']) > 0, 'the refusal says when to retry');
    t.notOk(cloneUp, 'the clone never got a session');
    t.notOk(s2.tunnel.sessions.has('pi1'), 's2 holds no session for pi1');
    t.equal(s1.tunnel.sessions.get('pi1'), first, 'the original session is kept');
    t.equal(first!.closedReason, undefined, 'and still up');
    t.ok(conflicts.length >= 2, 'each refusal is reported by s2');
    t.match(await s2.registry.metrics(), /vipmesh_tunnel_session_conflicts_total\{role="server"\} [2-9]/);
    const event = await until('the NodeIdentityConflict event', async () =>
      ((await s2.store.list('events')).items as Event[]).find((e) => e.reason === 'NodeIdentityConflict'),
    );
    t.match(event.message, /on server s1/);
    t.equal(event.involvedObject?.name, 'pi1');

    // The original's link to s1 breaks (its socket cut, its loop gone): once s1 drops the session, the
    // node's key goes and the agent retrying on s2 gets in.
    const ws = (original.conns[0]!.transport as WsTransport).ws as unknown as {
      _socket: { destroy(): void };
    };
    const cut = Date.now();
    ws._socket.destroy();
    void original.client.close();
    await until('the node gets in on s2', () => cloneUp);
    t.comment(`in on s2 ${Date.now() - cut} ms after the link to s1 broke`);
    t.ok(s2.tunnel.sessions.has('pi1'), 's2 holds the session');
    t.notOk(s1.tunnel.sessions.has('pi1'), 's1 no longer does');
    t.match(JSON.parse((await holderKey(etcd, 'pi1')) ?? '{}'), { server: 's2' }, 'the key names s2');
  },
);

t.test('a server that dies: its sessions count until its lease expires, then the node gets in', async (t) => {
  // A server "ghost" holding pi2's session dies: its key stays under a lease nobody keeps alive.
  const etcd = new Etcd3({ hosts: ds.url });
  const lease = etcd.lease(1, { autoKeepAlive: false });
  await lease.put(`${SESSIONS_PREFIX}pi2`).value(JSON.stringify({ server: 'ghost', since: Date.now() }));
  const died = Date.now();
  etcd.close();
  const a = agent(s2, 'pi2', tempDir('vipmesh-sessions-'));
  let up = false;
  a.client.on('connected', () => {
    up = true;
  });
  void a.client.connect().catch(() => {});
  await until("refused while the dead server's lease runs", () => a.refusals.length >= 1);
  t.match(a.refusals[0]!.message, /live tunnel session on server ghost/);
  await until('in once the lease expired', () => up);
  t.comment(`in on s2 ${Date.now() - died} ms after the server died (lease TTL 1 s)`);
  t.ok(s2.tunnel.sessions.has('pi2'));
});

t.test('a clean stop hands every session over at once (the lease is revoked)', async (t) => {
  const s3 = await server('s3');
  let closed = false;
  t.teardown(async () => {
    if (!closed) await s3.close();
  });
  const a = agent(s3, 'pi3', tempDir('vipmesh-sessions-'));
  await a.client.connect();
  const etcd = new Etcd3({ hosts: ds.url });
  t.teardown(() => etcd.close());
  t.match(JSON.parse((await holderKey(etcd, 'pi3')) ?? '{}'), { server: 's3' });
  await s3.close();
  closed = true;
  t.equal(await holderKey(etcd, 'pi3'), null, "the stopped server's session keys are gone");
});
