/**
 * A server restart with `--handover-timeout 0` on loopback, no root: a real `startServer()` with its local
 * agent (node `srv`, closed by the server as `vipmesh server --handover-timeout 0` does) holding a VIP, and
 * a second agent that could take the VIP over. The server is stopped cleanly and started again on the same
 * data dir. What a user would check: the server's own node never went NotReady (its Ready condition keeps
 * its transition time) and the VIP never changed holder. A node whose agent stops on its own while the
 * server stays is still NotReady at once. (With a hand-over timeout, the default, the local agent hands its
 * VIPs over before the server stops: test/netns/handover.test.ts.)
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Agent, type AgentAnnouncer } from '../src/agent/index.js';
import type { Node, Service } from '../src/api/index.js';
import { isVipmeshError } from '../src/errors.js';
import { silentLogger } from '../src/log.js';
import { type RunningServer, startServer } from '../src/server/index.js';
import { until } from '../src/testing/until.js';

class FakeAnnouncer extends EventEmitter implements AgentAnnouncer {
  readonly held = new Set<string>();
  async hold(vip: string): Promise<{ held: boolean }> {
    this.held.add(vip);
    return { held: true };
  }
  async release(vip: string): Promise<boolean> {
    return this.held.delete(vip);
  }
  async probe(): Promise<{ answered: boolean }> {
    return { answered: false };
  }
  get vips(): string[] {
    return [...this.held];
  }
  async close(): Promise<void> {
    this.held.clear();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'vipmesh-restart-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function server(port = 0): Promise<RunningServer> {
  return startServer({
    dataDir: join(dir, 'srv'),
    nodeName: 'srv',
    httpsListenPort: port,
    bindAddress: '127.0.0.1',
    clusterCidr: ['198.18.0.0/16'],
    heartbeatMs: 50,
    nodeLostAfter: 3,
    // Long enough for the local agent to reconnect on a loaded machine; the test never waits for its end.
    nodeGraceMs: 30_000,
    electionTtlSeconds: 1,
    logger: silentLogger(),
  });
}

function agent(name: string, url: string, token: string, announcer: FakeAnnouncer): Agent {
  return new Agent({
    servers: [url],
    token,
    nodeName: name,
    dataDir: join(dir, `agent-${name}`),
    registration: {
      addresses: [{ type: 'InternalIP', address: name === 'srv' ? '127.0.0.1' : '127.0.0.2' }],
    },
    announcer,
    heartbeatMs: 50,
    misses: 3,
    logger: silentLogger(),
  });
}

/**
 * The server and its local agent, wired as `vipmesh server --handover-timeout 0` does (the server closes its
 * agent first, once its node lifecycle no longer acts on lost sessions).
 */
async function serverWithAgent(port = 0): Promise<{ srv: RunningServer; local: Agent; ann: FakeAnnouncer }> {
  const srv = await server(port);
  const ann = new FakeAnnouncer();
  const local = agent('srv', srv.url, srv.credentials.joinToken, ann);
  srv.closeFirst('local-agent', () => local.close());
  await local.start();
  return { srv, local, ann };
}

const readyOf = (n: Node | undefined) => n?.status?.conditions?.find((c) => c.type === 'Ready');
const holderOf = (srv: RunningServer, vip: string) => srv.holders.holder(vip)?.node;
const OLD = '2020-01-01T00:00:00Z';

t.test('a clean server restart without hand-over leaves its own node Ready and moves no VIP', async (t) => {
  let { srv, ann } = await serverWithAgent();
  const port = srv.port;
  const otherAnn = new FakeAnnouncer();
  let other: Agent | undefined;
  t.teardown(async () => {
    await other?.close();
    await srv.close();
  });
  await until(
    'the server node Ready',
    () => readyOf(srv.informers.nodes.items.get('srv'))?.status === 'True',
  );
  await srv.store.create('ipaddresspools', {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'IPAddressPool',
    metadata: { name: 'lan', namespace: 'default' },
    spec: { addresses: ['198.51.100.200/32'] },
  });
  await srv.store.create('l2advertisements', {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'L2Advertisement',
    metadata: { name: 'lan', namespace: 'default' },
    spec: { ipAddressPools: ['lan'] },
  });
  await srv.store.create('services', {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'default' },
    spec: { type: 'LoadBalancer', ports: [{ port: 80 }] },
  } as Service);
  const vip = '198.51.100.200';
  // Only the server's node is up: the VIP lands there. Then a second node that could take it over joins.
  await until('the VIP placed on the server node', () => holderOf(srv, vip) === 'srv');
  await until('the local agent holds it', () => ann.held.has(vip));
  other = agent('b', srv.url, srv.credentials.joinToken, otherAnn);
  await other.start();
  await until('node b Ready', () => readyOf(srv.informers.nodes.items.get('b'))?.status === 'True');

  // Ready since long ago: a NotReady in between, however short, would give the condition a new time.
  await until('the Ready condition dated back', async () => {
    const n = await srv.store.get('nodes', 'srv');
    const status = { ...n.status, conditions: n.status?.conditions?.map((c) => ({ ...c })) ?? [] };
    const ready = status.conditions.find((c) => c.type === 'Ready');
    if (ready?.status !== 'True') return false;
    ready.lastTransitionTime = OLD;
    try {
      await srv.store.updateStatus('nodes', { ...n, status });
      return true;
    } catch (err) {
      if (isVipmeshError(err, 'VIPMESH_API_CONFLICT')) return false;
      throw err;
    }
  });
  const holders: Array<string | undefined> = [];
  const watch = () => {
    holders.push(holderOf(srv, vip));
    const r = readyOf(srv.informers.nodes.items.get('srv'));
    if (r?.status !== 'True') holders.push(`srv Ready=${r?.status}: ${r?.message}`);
  };
  srv.informers.nodes.on('change', watch);

  await srv.close();
  ({ srv, ann } = await serverWithAgent(port));
  srv.informers.nodes.on('change', watch);
  watch();
  await until('the local agent holds the VIP again', () => ann.held.has(vip));
  await until('node b back', () => srv.tunnel.sessions.has('b'));
  await srv.controllers()?.idle();
  watch();

  const node = srv.informers.nodes.items.get('srv');
  t.equal(readyOf(node)?.status, 'True', 'the server node is Ready');
  t.equal(readyOf(node)?.lastTransitionTime, OLD, 'and was never NotReady across the restart');
  t.same([...new Set(holders)], ['srv'], 'the VIP was held by the server node throughout');
  t.notOk(otherAnn.held.has(vip), 'node b never took the VIP');

  // An agent that stops on its own while its server stays: NotReady at once (no missed heartbeats needed).
  // A node that joins after the restart: b was Ready before it, so within the start grace the sweep would
  // decide on b instead (whether the restart crossed a wall-clock second decides which).
  await other.close();
  other = agent('c', srv.url, srv.credentials.joinToken, new FakeAnnouncer());
  await other.start();
  await until('node c Ready', () => readyOf(srv.informers.nodes.items.get('c'))?.status === 'True');
  await other.close();
  other = undefined;
  const lost = await until('node c NotReady', () => {
    const r = readyOf(srv.informers.nodes.items.get('c'));
    return r?.status === 'False' ? r : undefined;
  });
  t.match(lost.message, /1001/, `c: ${lost.message}`);
});
