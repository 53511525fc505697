/**
 * Snapshots of a running server's datastore, end to end on loopback (no root): `vipmesh snapshot save`
 * while 16 writers create Services through the server's store, then `vipmesh snapshot restore` into a fresh
 * data dir and a new server there. What a user checks: every Service whose create was acknowledged before
 * the save began is back, every pool is back, and every address the snapshot held is the address the new
 * server serves. The same with the server on a real etcd (its bbolt snapshot is restored key by key), an
 * `etcdctl snapshot save` file of the embedded datastore, and `vipmesh server --cluster-reset --restore-path`.
 * And a restore on the node that lost its data: with agents (fake announcers) holding VIPs, no VIP moves.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import t, { type Test } from 'tap';
import { Agent } from '../src/agent/index.js';
import type { Node, Service } from '../src/api/index.js';
import { run } from '../src/cli/program.js';
import { startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { type RunningServer, startServer } from '../src/server/index.js';
import { captureCli } from '../src/testing/cli.js';
import { svc } from '../src/testing/controlplane.js';
import { startEtcd } from '../src/testing/datastores.js';
import { FakeAnnouncer } from '../src/testing/fake-announcer.js';
import { tempDir } from '../src/testing/tmp.js';
import { until } from '../src/testing/until.js';

const exec = promisify(execFile);
/** One temporary directory for the file (removed at exit), and a new one inside it per use. */
const base = tempDir('vipmesh-snap-');
const sub = (prefix: string) => mkdtempSync(join(base, prefix));
const WRITERS = 16;
const PER_WRITER = 12;

function server(
  dataDir: string,
  extra: Partial<Parameters<typeof startServer>[0]> = {},
): Promise<RunningServer> {
  return startServer({
    dataDir,
    nodeName: 'srv',
    httpsListenPort: 0,
    bindAddress: '127.0.0.1',
    clusterCidr: ['198.18.0.0/16'],
    heartbeatMs: 50,
    nodeLostAfter: 3,
    electionTtlSeconds: 1,
    logger: silentLogger(),
    ...extra,
  });
}

/** `vipmesh ARGS` in-process; resolves to stdout, rejects with stderr on a non-zero exit. */
async function cli(...args: string[]): Promise<string> {
  const ctx = captureCli(silentLogger);
  const code = await run(args, ctx);
  if (code !== 0) throw new Error(`vipmesh ${args.join(' ')} exited ${code}: ${ctx.err()}`);
  return ctx.out();
}

const addressOf = (s: Service) => s.status?.loadBalancer?.ingress?.[0]?.ip;

async function addPool(srv: RunningServer): Promise<void> {
  await srv.store.create('ipaddresspools', {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'IPAddressPool',
    metadata: { name: 'lan', namespace: 'default' },
    spec: { addresses: ['198.51.100.0/24'] },
  });
  await srv.store.create('l2advertisements', {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'L2Advertisement',
    metadata: { name: 'lan', namespace: 'default' },
    spec: { ipAddressPools: ['lan'] },
  });
}

/**
 * 16 writers creating Services; `save()` runs once enough are acknowledged, while they go on. Resolves
 * with the names acknowledged before the save began and the save's output.
 */
async function saveUnderWriters(srv: RunningServer, save: () => Promise<string>) {
  const acked = new Set<string>();
  let saving: Promise<string> | undefined;
  let before: Set<string> | undefined;
  const startSave = () => {
    if (saving !== undefined || acked.size < WRITERS * 3) return;
    before = new Set(acked);
    saving = save();
  };
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; i < PER_WRITER; i++) {
        const name = `w${w}-${i}`;
        await srv.store.create('services', { ...svc(name), metadata: { name, namespace: 'default' } });
        acked.add(name);
        startSave();
      }
    }),
  );
  const out = await saving!;
  return { before: before!, out };
}

/** What a restored data dir holds, read with a datastore of its own before any server touches it. */
async function servicesIn(dataDir: string): Promise<Map<string, string | undefined>> {
  const db = join(dataDir, 'server', 'db');
  const ds = await startDatastore({
    dataDir: db,
    listenAddress: `unix://${join(db, 'peek.sock')}`,
    logger: silentLogger(),
  });
  const etcd = new Etcd3({ hosts: ds.url });
  try {
    const all = await etcd.getAll().prefix('/registry/services/').strings();
    return new Map(
      Object.values(all).map((v) => {
        const s = JSON.parse(v) as Service;
        return [s.metadata.name, addressOf(s)];
      }),
    );
  } finally {
    etcd.close();
    await ds.close();
  }
}

/** Restore `file` into a fresh data dir, start a server there and check it against what was acknowledged. */
async function restoreAndCheck(t: Test, file: string, before: Set<string>, source: RunningServer) {
  const fresh = sub('vipmesh-snap-restored-');
  t.match(await cli('snapshot', 'restore', file, '--data-dir', fresh), /restored into/);
  const inSnapshot = await servicesIn(fresh);
  for (const name of before)
    t.ok(inSnapshot.has(name), `${name}, acknowledged before the save, is in the snapshot`);
  const restored = await server(fresh);
  t.teardown(() => restored.close());
  await until(
    'the restored server is master',
    () => restored.isMaster() && restored.controllers() !== undefined,
  );
  await restored.controllers()?.idle();
  // As a user checks: through the restored server's HTTPS API.
  const conn = [
    '--server',
    restored.url,
    '--token',
    restored.credentials.adminToken,
    '--admin-config',
    join(fresh, 'none'),
  ];
  const get = async <T>(what: string) =>
    JSON.parse(await cli('get', what, '-o', 'json', ...conn)) as { items: T[] };
  const pools = await get<{ metadata: { name: string }; spec?: { addresses: string[] } }>('ipaddresspools');
  t.same(
    pools.items.map((p) => [p.metadata.name, p.spec?.addresses]),
    [['lan', ['198.51.100.0/24']]],
  );
  const now = new Map((await get<Service>('services')).items.map((s) => [s.metadata.name, addressOf(s)]));
  t.same(
    [...now.keys()].sort(),
    [...inSnapshot.keys()].sort(),
    'the API lists every Service of the snapshot',
  );
  const moved = [...inSnapshot].filter(([name, ip]) => ip !== undefined && now.get(name) !== ip);
  t.same(moved, [], 'every address held in the snapshot is kept');
  const sourceNow = new Map(
    (await source.store.list('services')).items.map((s) => [s.metadata.name, addressOf(s)]),
  );
  const differ = [...inSnapshot].filter(([name, ip]) => ip !== undefined && sourceNow.get(name) !== ip);
  t.same(differ, [], 'and is the address the first server gave');
  t.ok(
    [...now.values()].every((ip) => ip !== undefined),
    'the restored server addresses the rest',
  );
}

t.test('embedded datastore: save under 16 writers, restore into a fresh server', async (t) => {
  const dir = sub('vipmesh-snap-src-');
  const srv = await server(dir);
  t.teardown(() => srv.close());
  await addPool(srv);
  const { before, out } = await saveUnderWriters(srv, () =>
    cli('snapshot', 'save', '--data-dir', dir, '--node-name', 'srv'),
  );
  t.match(out, /^Snapshot on-demand-srv-\d+ saved/);
  const ls = JSON.parse(await cli('snapshot', 'ls', '--data-dir', dir, '-o', 'json')) as Array<{
    name: string;
    location: string;
  }>;
  t.equal(ls.length, 1);
  await srv.controllers()?.idle();
  await restoreAndCheck(t, ls[0]!.location.slice('file://'.length), before, srv);
});

t.test('real etcd: save under 16 writers, restore its bbolt snapshot into a fresh server', async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.stop());
  const dir = sub('vipmesh-snap-src-');
  const srv = await server(dir, { datastoreEndpoint: etcd.endpoint });
  t.teardown(() => srv.close());
  await until('master', () => srv.isMaster());
  await addPool(srv);
  const snaps = sub('vipmesh-snap-dir-');
  const { before } = await saveUnderWriters(srv, () =>
    cli('snapshot', 'save', '--datastore-endpoint', etcd.endpoint, '--dir', snaps, '--node-name', 'srv'),
  );
  const [only] = JSON.parse(await cli('snapshot', 'ls', '--dir', snaps, '-o', 'json')) as Array<{
    location: string;
  }>;
  await srv.controllers()?.idle();
  await restoreAndCheck(t, only!.location.slice('file://'.length), before, srv);
});

t.test(
  'etcdctl snapshot save of the embedded datastore is accepted; --cluster-reset --restore-path starts on it once',
  async (t) => {
    const dir = sub('vipmesh-snap-src-');
    const srv = await server(dir, { datastoreListenAddress: '127.0.0.1:0' });
    t.teardown(() => srv.close());
    await addPool(srv);
    for (const name of ['a', 'b', 'c'])
      await srv.store.create('services', { ...svc(name), metadata: { name, namespace: 'default' } });
    await srv.controllers()?.idle();
    const file = join(sub('vipmesh-snap-etcdctl-'), 'etcdctl.db');
    await exec('etcdctl', [`--endpoints=${srv.datastoreUrl}`, 'snapshot', 'save', file], {
      env: { ...process.env, ETCDCTL_API: '3' },
    });

    const fresh = sub('vipmesh-snap-reset-');
    let restored = await server(fresh, { clusterReset: true, restorePath: file });
    const names = async (s: RunningServer) =>
      (await s.store.list('services')).items.map((x) => x.metadata.name).sort();
    t.same(await names(restored), ['a', 'b', 'c']);
    await until('master', () => restored.isMaster() && restored.controllers() !== undefined);
    await restored.store.create('services', { ...svc('d'), metadata: { name: 'd', namespace: 'default' } });
    await restored.close();
    // Started again with the same flags (left in a config file): the data as it is, not the snapshot again.
    restored = await server(fresh, { clusterReset: true, restorePath: file });
    t.teardown(() => restored.close());
    t.same(await names(restored), ['a', 'b', 'c', 'd']);
  },
);

t.test('--restore-path is refused without --cluster-reset and with an external datastore', async (t) => {
  const file = join(sub('vipmesh-snap-flags-'), 'none');
  await t.rejects(server(sub('vipmesh-snap-flags-'), { restorePath: file }), {
    code: 'VIPMESH_SNAPSHOT_BAD_FLAG',
  });
  await t.rejects(
    server(sub('vipmesh-snap-flags-'), {
      clusterReset: true,
      restorePath: file,
      datastoreEndpoint: 'http://127.0.0.1:1',
    }),
    { code: 'VIPMESH_SNAPSHOT_BAD_FLAG', message: /etcdctl snapshot restore/ },
  );
  // --cluster-reset alone: the embedded datastore has one member; the server starts on its data.
  const plain = await server(sub('vipmesh-snap-flags-'), { clusterReset: true });
  t.ok(plain.url, 'started');
  await plain.close();
});

t.test('restored on the node that lost its data, every VIP stays with its holder', async (t) => {
  const dir = sub('vipmesh-snap-vips-');
  const agentOf = (name: string, url: string, token: string, announcer: FakeAnnouncer) =>
    new Agent({
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
  const withLocal = async (port: number) => {
    // Long enough for the agents to reconnect on a loaded machine; the test never waits for its end.
    const srv = await server(join(dir, 'srv'), { httpsListenPort: port, nodeGraceMs: 30_000 });
    const ann = new FakeAnnouncer();
    const local = agentOf('srv', srv.url, srv.credentials.joinToken, ann);
    srv.closeFirst('local-agent', () => local.close());
    await local.start();
    return { srv, ann };
  };
  let { srv, ann } = await withLocal(0);
  const port = srv.port;
  const annB = new FakeAnnouncer();
  const b = agentOf('b', srv.url, srv.credentials.joinToken, annB);
  t.teardown(async () => {
    await b.close();
    await srv.close();
  });
  await b.start();
  const ready = (n: Node | undefined) =>
    n?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  await until(
    'both nodes Ready',
    () => ready(srv.informers.nodes.items.get('srv')) && ready(srv.informers.nodes.items.get('b')),
  );
  await srv.store.create('ipaddresspools', {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'IPAddressPool',
    metadata: { name: 'lan', namespace: 'default' },
    spec: { addresses: ['198.51.100.200-198.51.100.205'] },
  });
  await srv.store.create('l2advertisements', {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'L2Advertisement',
    metadata: { name: 'lan', namespace: 'default' },
    spec: { ipAddressPools: ['lan'] },
  });
  for (let i = 0; i < 6; i++) {
    await srv.store.create('services', {
      ...svc(`s${i}`),
      metadata: { name: `s${i}`, namespace: 'default' },
    });
  }
  const holders = () => {
    const out: Record<string, string> = {};
    for (const [v, h] of srv.holders.all) out[v] = h.node;
    return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
  };
  await until('six VIPs placed and held', () => {
    const h = holders();
    return (
      Object.keys(h).length === 6 &&
      Object.entries(h).every(([v, n]) => (n === 'srv' ? ann : annB).held.has(v)) &&
      h
    );
  });
  const placed = holders();
  t.ok(Object.values(placed).includes('b') && Object.values(placed).includes('srv'), 'both nodes hold VIPs');
  const out = await cli('snapshot', 'save', '--data-dir', join(dir, 'srv'), '--node-name', 'srv');
  const name = /Snapshot (\S+) saved/.exec(out)![1]!;

  // The server goes down and its data with it; the agents keep what they hold.
  await srv.close();
  for (const ext of ['', '-wal', '-shm'])
    rmSync(join(dir, 'srv', 'server', 'db', `state.db${ext}`), { force: true });
  await cli('snapshot', 'restore', name, '--data-dir', join(dir, 'srv'));
  const seen: string[] = [];
  ({ srv, ann } = await withLocal(port));
  const look = () => seen.push(JSON.stringify(holders()));
  srv.holders.on('change', look);
  look();
  await until('the restored server is master', () => srv.controllers() !== undefined);
  await until('b is back', () => srv.tunnel.sessions.has('b'));
  await until('the local agent holds its VIPs again', () =>
    Object.entries(placed).every(([v, n]) => n !== 'srv' || ann.held.has(v)),
  );
  await srv.controllers()?.idle();
  look();
  t.same(
    [...new Set(seen)],
    [JSON.stringify(placed)],
    'every VIP kept its holder from the start of the restored server on',
  );
  t.same(
    [...annB.held].sort(),
    Object.keys(placed)
      .filter((v) => placed[v] === 'b')
      .sort(),
    'b still holds its VIPs',
  );
});
