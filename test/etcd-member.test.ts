/**
 * The embedded etcd member with the real Debian etcd on free loopback ports: started with certificates from
 * the cluster CA, healthy over TLS, restarted when killed, its members listed and removed through a client
 * with its certificate; the join route and request over HTTPS; the SQLite datastore copied into it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import t from 'tap';
import {
  EtcdMember,
  etcdPaths,
  LOCAL_GRPC_OPTIONS,
  listMembers,
  removeMember,
} from '../src/etcd-member/index.js';
import { startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { ensureServerCredentials, issueCertificate } from '../src/pki/index.js';
import { addMember, JOIN_PATH, joinRoute, joinWithRetry, parseJoinRequest } from '../src/server/etcd-join.js';
import { MIGRATED_MARKER, migrateSqlite, needsMigration } from '../src/server/migrate-step.js';
import { freePort } from '../src/testing/datastores.js';
import { tempDir } from '../src/testing/tmp.js';
import { until } from '../src/testing/until.js';

function hasEtcd(): boolean {
  try {
    execFileSync('etcd', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

t.test(
  'a supervised member over TLS',
  { skip: hasEtcd() ? false : 'needs etcd (Debian etcd-server)' },
  async (t) => {
    const dir = tempDir('vipmesh-etcd-member-');
    const creds = await ensureServerCredentials(dir, { sans: ['127.0.0.1'] });
    const paths = etcdPaths(dir);
    mkdirSync(join(dir, 'server', 'tls', 'etcd'), { recursive: true });
    const leaf = await issueCertificate(creds, {
      cn: 'etcd-m1',
      sans: ['127.0.0.1', 'localhost'],
      client: true,
    });
    writeFileSync(paths.caFile, creds.caCertPem);
    writeFileSync(paths.certFile, leaf.certPem);
    writeFileSync(paths.keyFile, leaf.keyPem);
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const member = new EtcdMember({
      config: {
        name: 'm1',
        paths,
        peerIp: '127.0.0.1',
        clientPort,
        peerPort,
        initialCluster: `m1=https://127.0.0.1:${peerPort}`,
        initialClusterState: 'new',
      },
      binary: 'etcd',
      logger: silentLogger(),
    });
    member.start();
    t.teardown(() => member.close());
    await member.waitHealthy(30_000);
    t.ok(existsSync(join(paths.dataDir, 'member')), 'its data is under <data-dir>/server/db/etcd');
    const client = new Etcd3({
      hosts: member.clientUrl,
      credentials: {
        rootCertificate: Buffer.from(creds.caCertPem),
        certChain: Buffer.from(leaf.certPem),
        privateKey: Buffer.from(leaf.keyPem),
      },
      grpcOptions: { ...LOCAL_GRPC_OPTIONS },
    });
    t.teardown(() => client.close());
    await client.put('a').value('1');
    t.equal(await client.get('a').string(), '1', 'a client with the member certificate writes and reads');
    const anonymous = new Etcd3({
      hosts: member.clientUrl,
      credentials: { rootCertificate: Buffer.from(creds.caCertPem) },
      dialTimeout: 2000,
    });
    await t.rejects(anonymous.get('a').string(), 'a client without a certificate is refused');
    anonymous.close();

    const members = await listMembers(client);
    t.same(
      members.map((m) => [m.name, m.started]),
      [['m1', true]],
      'one started member',
    );
    await t.rejects(
      removeMember(client, 'nope'),
      { code: 'VIPMESH_ETCD_MEMBER' },
      'an unknown name is refused',
    );

    const pid = member.pid!;
    process.kill(pid, 'SIGKILL');
    await until('restarted', async () => member.starts === 2 && member.pid !== pid, { timeoutMs: 10_000 });
    await member.waitHealthy(30_000);
    t.equal(await client.get('a').string(), '1', 'the member is back with its data after being killed');

    await t.test('the SQLite datastore is copied once', async (t) => {
      const db = tempDir('vipmesh-migrate-');
      const ds = await startDatastore({ dataDir: db, listenAddress: '127.0.0.1:0', logger: silentLogger() });
      const src = new Etcd3({ hosts: ds.url });
      for (let i = 0; i < 1200; i++) await src.put(`/registry/k${i}`).value(`v${i}`);
      const lease = src.lease(60);
      await lease.put('/vipmesh/servers/old').value('x');
      src.close();
      await ds.close();
      t.ok(needsMigration(db));
      const n = await migrateSqlite(db, client, {
        logger: silentLogger(),
        connect: (url) => new Etcd3({ hosts: url }),
      });
      t.equal(n, 1200, 'every key without a lease copied (three pages)');
      t.equal(await client.get('/registry/k1199').string(), 'v1199');
      t.equal(await client.get('/vipmesh/servers/old').string(), null, 'a leased key is left behind');
      t.ok(existsSync(join(db, MIGRATED_MARKER)) && !needsMigration(db), 'marked migrated');
      t.ok(existsSync(join(db, 'state.db')), 'the SQLite file is kept');
    });
  },
);

t.test('join request fields', async (t) => {
  t.same(parseJoinRequest({ name: 's2', peerUrl: 'https://198.51.100.12:2380' }), {
    name: 's2',
    peerUrl: 'https://198.51.100.12:2380',
  });
  t.throws(() => parseJoinRequest({ name: 'S 2', peerUrl: 'https://1.2.3.4:2380' }), {
    code: 'VIPMESH_ETCD_JOIN',
  });
  t.throws(() => parseJoinRequest({ name: 's2', peerUrl: 'http://1.2.3.4:2380' }), {
    code: 'VIPMESH_ETCD_JOIN',
  });
  t.throws(() => parseJoinRequest(null), { code: 'VIPMESH_ETCD_JOIN' });
});

/** An etcd stand-in for the cluster calls the join route makes. */
function fakeCluster(members: Array<{ name: string; peerURLs: string[] }>) {
  const added: string[][] = [];
  return {
    added,
    etcd: {
      cluster: {
        memberList: async () => ({ members }),
        memberAdd: async (req: { peerURLs: string[] }) => {
          added.push(req.peerURLs);
          members.push({ name: '', peerURLs: req.peerURLs });
          return { members };
        },
      },
    } as unknown as Etcd3,
  };
}

t.test('adding a member once; names and peer URLs already taken are refused', async (t) => {
  const f = fakeCluster([{ name: 's1', peerURLs: ['https://198.51.100.11:2380'] }]);
  const joiner = { name: 's2', peerUrl: 'https://198.51.100.12:2380' };
  const want = 's1=https://198.51.100.11:2380,s2=https://198.51.100.12:2380';
  t.equal(await addMember(f.etcd, joiner), want);
  t.equal(await addMember(f.etcd, joiner), want, 'a retry is not added again');
  t.equal(f.added.length, 1);
  await t.rejects(addMember(f.etcd, { name: 's3', peerUrl: 'https://198.51.100.11:2380' }), {
    code: 'VIPMESH_ETCD_JOIN',
  });
  await t.rejects(addMember(f.etcd, { name: 's1', peerUrl: 'https://198.51.100.13:2380' }), {
    code: 'VIPMESH_ETCD_JOIN',
  });
});

t.test('the join route over HTTPS: the join token only', async (t) => {
  const dir = tempDir('vipmesh-join-');
  const creds = await ensureServerCredentials(dir, { sans: ['127.0.0.1'] });
  let unavailable = 2;
  const f = fakeCluster([{ name: 's1', peerURLs: ['https://198.51.100.11:2380'] }]);
  const route = joinRoute({ joinToken: creds.joinToken, ca: creds, etcd: f.etcd, logger: silentLogger() });
  const https = createServer({ cert: creds.certPem, key: creds.keyPem }, (req, res) => {
    if (req.url === '/cacerts') return void res.end(creds.caCertPem);
    if (req.url === JOIN_PATH && unavailable > 0) {
      unavailable -= 1;
      return void res.writeHead(503).end('{"message":"etcdserver: unhealthy cluster"}');
    }
    if (!route(req, res)) res.writeHead(404).end('{}');
  });
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  t.teardown(() => https.close());
  const url = `https://127.0.0.1:${(https.address() as AddressInfo).port}`;
  const joiner = { name: 's2', peerUrl: 'https://198.51.100.12:2380' };
  let now = 0;
  const o = {
    timeoutMs: 10_000,
    now: () => now,
    sleep: async (ms: number) => {
      now += ms;
    },
    logger: silentLogger(),
  };
  const a = await joinWithRetry(url, creds.joinToken, joiner, o);
  t.equal(now, 2000, 'retried twice while etcd refused a new member');
  t.equal(a.initialCluster, 's1=https://198.51.100.11:2380,s2=https://198.51.100.12:2380');
  t.equal(a.caKeyPem, creds.caKeyPem, 'the joiner gets the CA to issue its member certificate');
  await t.rejects(
    joinWithRetry(url, creds.adminToken, joiner, o),
    { code: 'VIPMESH_ETCD_JOIN' },
    'not the admin token',
  );
  const forged = creds.joinToken.replace(/:[^:]+$/, ':wrongsecret123');
  await t.rejects(
    joinWithRetry(url, forged, joiner, o),
    { code: 'VIPMESH_ETCD_JOIN' },
    'a wrong secret is final',
  );
});
