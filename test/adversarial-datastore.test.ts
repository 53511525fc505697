/**
 * The embedded datastore is not a back door: a local user who is not root cannot reach the server's datastore
 * (it listens on a unix socket in a 0700 directory, not on TCP) nor read its files (0600), so it cannot write a
 * pool, an L2Advertisement or a Service past the API's token and validation. The nobody part needs root (to
 * run commands as nobody); the modes and the listener checks run as any user.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import t from 'tap';
import { startDatastore } from '../src/kine/index.js';
import { req } from '../src/kine/requests.js';
import { type RunningServer, startServer } from '../src/server/index.js';
import { tempDir } from '../src/testing/tmp.js';

const root = process.getuid?.() === 0;
const haveEtcdctl = spawnSync('etcdctl', ['version']).status === 0;
const haveRunuser = spawnSync('runuser', ['--version']).status === 0;
const nobodySkip = !root
  ? 'needs root: the attack runs etcdctl as the user nobody (runuser)'
  : !haveEtcdctl
    ? 'needs etcdctl'
    : !haveRunuser
      ? 'needs runuser'
      : false;

/** A logger whose records the test reads. */
function recordingLogger(): { logger: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'info' },
    {
      write(line: string) {
        records.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return { logger, records };
}

const mode = (path: string): string => `0${(statSync(path).mode & 0o7777).toString(8)}`;

/** TCP ports this process listens on, from /proc (the sockets behind our file descriptors). */
function listeningPorts(): Set<number> {
  const ours = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) ours.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue; // no IPv6
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A' || !ours.has(f[9]!)) continue; // 0A: LISTEN
      ports.add(Number.parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}

/** Run `argv` in `cwd` without blocking the event loop; its exit status and output. */
function run(
  argv: string[],
  cwd: string,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd,
      env: { ...process.env, ETCDCTL_API: '3' },
      timeout: 20_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** A server on `dataDir` (loopback API, loopback metrics, no admin config). */
function server(dataDir: string, logger: Logger, datastoreListenAddress?: string): Promise<RunningServer> {
  return startServer({
    ...(datastoreListenAddress === undefined ? {} : { datastoreListenAddress }),
    dataDir,
    nodeName: 'srv',
    httpsListenPort: 0,
    bindAddress: '127.0.0.1',
    clusterCidr: ['198.18.0.0/16'],
    heartbeatMs: 100,
    nodeLostAfter: 3,
    metricsBindAddress: '127.0.0.1:0',
    adminConfigPath: '',
    logger,
  });
}

/** An install as an older vipmesh left it: data dir 0755, database files 0644. */
function looseInstall(base: string): string {
  const dataDir = join(base, 'data');
  const db = join(dataDir, 'server', 'db');
  mkdirSync(db, { recursive: true });
  for (const dir of [dataDir, join(dataDir, 'server'), db]) chmodSync(dir, 0o755);
  for (const f of ['state.db', 'state.db-wal', 'state.db-shm']) {
    writeFileSync(join(db, f), '');
    chmodSync(join(db, f), 0o644);
  }
  return dataDir;
}

t.test('the server opens no TCP port for its datastore, and an old install gets private modes', async (t) => {
  const base = tempDir('vipmesh-adv-ds-');
  chmodSync(base, 0o755);
  const dataDir = looseInstall(base);
  const db = join(dataDir, 'server', 'db');
  const before = listeningPorts();
  const { logger, records } = recordingLogger();
  const srv = await server(dataDir, logger);
  t.teardown(() => srv.close());

  t.equal(srv.datastoreUrl, `unix://${join(db, 'kine.sock')}`, 'the datastore endpoint is the unix socket');
  const opened = [...listeningPorts()].filter((p) => !before.has(p)).sort();
  const metricsPort = Number(new URL(srv.metrics!.url).port);
  t.same(opened, [srv.port, metricsPort].sort(), 'the only TCP listeners are the API and the metrics');

  t.equal(mode(dataDir), '0700', 'data dir');
  t.equal(mode(join(dataDir, 'server')), '0700', '<data dir>/server');
  t.equal(mode(db), '0700', 'datastore dir');
  for (const f of ['state.db', 'state.db-wal', 'state.db-shm', 'kine.sock']) {
    t.equal(mode(join(db, f)), '0600', f);
  }
  const changed = records.filter((r) => r['from'] !== undefined).map((r) => [r['path'], r['from'], r['to']]);
  t.same(
    changed.sort(),
    [
      [dataDir, '0755', '0700'],
      [join(dataDir, 'server'), '0755', '0700'],
      [db, '0755', '0700'],
      [join(db, 'state.db'), '0644', '0600'],
      [join(db, 'state.db-wal'), '0644', '0600'],
      [join(db, 'state.db-shm'), '0644', '0600'],
    ].sort(),
    'each mode fixed is logged with its old and new value',
  );
});

t.test('a fresh datastore creates its files 0600 whatever the umask', async (t) => {
  const dir = join(tempDir('vipmesh-adv-ds-'), 'db');
  const old = process.umask(0o000);
  t.teardown(() => process.umask(old));
  const sock = join(dir, 'kine.sock');
  const { logger } = recordingLogger();
  const ds = await startDatastore({ dataDir: dir, listenAddress: `unix://${sock}`, logger });
  t.teardown(() => ds.close());
  await ds.backend.put(req.put('k', 'v'));
  t.equal(mode(dir), '0700');
  for (const f of ['state.db', 'state.db-wal', 'state.db-shm', 'kine.sock'])
    t.equal(mode(join(dir, f)), '0600', f);
});

t.test('a TCP listener says at start that it has no authentication', async (t) => {
  const dir = join(tempDir('vipmesh-adv-ds-'), 'db');
  const { logger, records } = recordingLogger();
  const ds = await startDatastore({ dataDir: dir, listenAddress: '0.0.0.0:0', logger });
  t.teardown(() => ds.close());
  const warn = records.find((r) => r['level'] === 40 && r['authentication'] === 'none');
  t.match(warn?.['msg'], /no authentication and no TLS: anyone who can reach this address/);
  t.equal(warn?.['address'], ds.address);
});

t.test(
  'a server asked for a TCP datastore listens there and warns that every local user can use it',
  async (t) => {
    const { logger, records } = recordingLogger();
    const srv = await server(join(tempDir('vipmesh-adv-ds-'), 'data'), logger, '127.0.0.1:0');
    t.teardown(() => srv.close());
    t.match(srv.datastoreUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    const warn = records.find((r) => r['level'] === 40 && r['authentication'] === 'none');
    t.match(warn?.['msg'], /no authentication: every local user can read and write every key/);
  },
);

t.test('nobody cannot reach the datastore nor read its files; root can', { skip: nobodySkip }, async (t) => {
  const base = tempDir('vipmesh-adv-ds-');
  chmodSync(base, 0o755); // only the data dir's own modes stand between nobody and the datastore
  const dataDir = looseInstall(base);
  const db = join(dataDir, 'server', 'db');
  const srv = await server(dataDir, pino({ level: 'silent' }));
  t.teardown(() => srv.close());
  const sock = join(db, 'kine.sock');
  t.equal(srv.datastoreUrl, `unix://${sock}`);

  // etcdctl (Go) needs the relative unix://name form: a public directory holding a link to the socket.
  const pub = join(base, 'public');
  mkdirSync(pub);
  chmodSync(pub, 0o755);
  symlinkSync(sock, join(pub, 'kine.sock'));
  const key = '/registry/ipaddresspools/default/evil';
  const pool = JSON.stringify({ kind: 'IPAddressPool', spec: { addresses: ['203.0.113.66/32'] } });
  // Run asynchronously: the server answering lives in this process.
  const etcdctl = (asNobody: boolean, ...args: string[]) => {
    const cmd = ['etcdctl', '--debug', '--endpoints', 'unix://kine.sock', '--dial-timeout', '2s', ...args];
    return run(asNobody ? ['runuser', '-u', 'nobody', '--', ...cmd] : cmd, pub);
  };

  const attack = await etcdctl(true, 'put', key, pool);
  t.not(attack.status, 0, 'nobody: etcdctl put fails');
  t.match(attack.stderr, /connect: permission denied/, 'nobody: connecting to the socket fails with EACCES');
  const read = await etcdctl(true, 'get', '/registry/', '--prefix', '--keys-only');
  t.not(read.status, 0, 'nobody: etcdctl get fails');

  const cat = spawnSync('runuser', ['-u', 'nobody', '--', 'cat', join(db, 'state.db')], { encoding: 'utf8' });
  t.not(cat.status, 0, 'nobody: cannot read the database file');
  t.match(cat.stderr, /Permission denied/);
  const ls = spawnSync('runuser', ['-u', 'nobody', '--', 'ls', dataDir], { encoding: 'utf8' });
  t.not(ls.status, 0, 'nobody: cannot list the data dir');

  const asRoot = await etcdctl(false, 'get', '/registry/', '--prefix', '--keys-only');
  t.equal(asRoot.status, 0, `root: etcdctl on the socket works (${asRoot.stderr.slice(-300)})`);
  t.notMatch(asRoot.stdout, key, 'the pool nobody tried to write is not there');
});

t.test('a socket path over the sun_path limit is refused, naming it, before anything listens', async (t) => {
  const dir = join(tempDir('vipmesh-adv-ds-'), 'x'.repeat(100));
  const sock = join(dir, 'kine.sock');
  const { logger } = recordingLogger();
  await t.rejects(startDatastore({ dataDir: dir, listenAddress: `unix://${sock}`, logger }), {
    code: 'VIPMESH_KINE_LISTEN',
    message: `cannot listen on unix://${sock}: unix socket path ${sock} is ${Buffer.byteLength(sock)} bytes; the limit is 107`,
  });
});
