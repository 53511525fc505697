/**
 * Two servers on one external datastore (the embedded kine started on its own stands in for etcd; the
 * netns suite runs the same against a real etcd): shared credentials, one master at a time, the role
 * handed over when the master leaves, and the nodes of a server that is gone marked NotReady by the master.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import t from 'tap';
import { Agent, type AgentAnnouncer } from '../src/agent/index.js';
import { ApiClient, type Node } from '../src/api/index.js';
import { startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { ELECTION_NAME, type RunningServer, startServer } from '../src/server/index.js';
import { until } from '../src/testing/until.js';

const dir = mkdtempSync(join(tmpdir(), 'vipmesh-election-'));
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

const announcer: AgentAnnouncer = {
  hold: async () => ({ held: true }),
  release: async () => true,
  probe: async () => ({ answered: false }),
  vips: [],
  on: () => undefined,
  close: async () => undefined,
};

t.test(
  'servers on one datastore share credentials and elect one master; the role moves on leave',
  async (t) => {
    const s1 = await server('s1');
    const s2 = await server('s2');
    let closed1 = false;
    t.teardown(async () => {
      if (!closed1) await s1.close();
      await s2.close();
    });
    t.equal(
      s2.credentials.joinToken,
      s1.credentials.joinToken,
      'the second server took the join token from the datastore',
    );
    t.equal(s2.credentials.adminToken, s1.credentials.adminToken, 'and the admin token');
    t.equal(s2.credentials.caHash, s1.credentials.caHash, 'and the CA');
    await until('a master', () => s1.isMaster() || s2.isMaster());
    // Once both campaigns hold a key, the order of the keys decides: the election is settled.
    const etcd = new Etcd3({ hosts: ds.url });
    t.teardown(() => etcd.close());
    const campaigns = etcd.namespace(`election/${ELECTION_NAME}/`);
    await until('both servers campaigning', async () => (await campaigns.getAll().keys()).length === 2);
    t.equal(Number(s1.isMaster()) + Number(s2.isMaster()), 1, 'exactly one master');
    t.equal(s1.isMaster(), true, 'the first to campaign');
    t.ok(
      await until('the master to start its controllers', () => s1.controllers()),
      'the master runs the controllers',
    );
    t.equal(s2.controllers(), undefined, 'the other does not');

    // An agent joins s1 only; then s1 goes away for good (no node-lost: it is shutting down).
    const agent = new Agent({
      servers: [s1.url],
      token: s1.credentials.joinToken,
      nodeName: 'n1',
      dataDir: join(dir, 'n1'),
      registration: { addresses: [{ type: 'InternalIP', address: '198.51.100.21' }] },
      announcer,
      heartbeatMs: 50,
      logger: silentLogger(),
      tunnel: { backoffCapMs: 200 },
    });
    t.teardown(() => agent.close());
    await agent.start();
    const api = await ApiClient.connect({ server: s2.url, token: s2.credentials.adminToken });
    t.teardown(() => api.close());
    await until('n1 Ready', async () => {
      const n = (await api.list('nodes')).items[0] as Node | undefined;
      return n?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    });
    await s1.close();
    closed1 = true;
    await until('s2 master', () => s2.isMaster());
    t.ok(s2.controllers(), 's2 runs the controllers once s1 resigned');
    const n = await until('n1 NotReady (its server is gone, it did not come back)', async () => {
      const node = (await api.get('nodes', 'n1')) as Node;
      return node.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'False');
    });
    t.match(n.message, /server s1 is gone/);
  },
);
