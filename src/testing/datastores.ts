/**
 * Test helpers for the control plane and the controllers built on it: a real etcd on free loopback ports
 * (credentials come from src/pki's `ensureServerCredentials` on a temp dir). Not used by the daemon.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { createResourceStore } from '../api/create.js';
import type { EtcdTuning } from '../api/etcd-kv.js';
import type { ResourceStore } from '../api/store.js';
import { startDatastore } from '../kine/index.js';
import { silentLogger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { freePort } from '../util/free-port.js';
import { type ApiServer, createApiServer } from './api-server.js';

export { freePort };

/** A running etcd. */
export interface TestEtcd {
  endpoint: string;
  stop(): Promise<void>;
}

/**
 * Start the Debian `etcd` binary on free loopback ports with a temporary data dir; resolves when it serves.
 * `stop()` kills it and removes the data dir.
 */
export async function startEtcd(binary = 'etcd'): Promise<TestEtcd> {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-etcd-'));
  const client = await freePort();
  const peer = await freePort();
  const c = `http://127.0.0.1:${client}`;
  const p = `http://127.0.0.1:${peer}`;
  const child: ChildProcess = spawn(
    binary,
    [
      '--name=test',
      `--data-dir=${dir}`,
      `--listen-client-urls=${c}`,
      `--advertise-client-urls=${c}`,
      `--listen-peer-urls=${p}`,
      `--initial-advertise-peer-urls=${p}`,
      `--initial-cluster=test=${p}`,
      '--log-level=error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  // If the test process dies without teardown, do not leave etcd behind.
  const onExit = () => child.kill('SIGKILL');
  process.once('exit', onExit);
  const stop = async () => {
    process.off('exit', onExit);
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`etcd exited (${child.exitCode}): ${stderr}`);
    }
    try {
      const res = await fetch(`${c}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`etcd did not become healthy: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { endpoint: c, stop };
}

/** A datastore for a test: a real etcd process, or the embedded one (src/kine) on a temp dir. */
export async function startTestDatastore(which: 'etcd' | 'kine'): Promise<TestEtcd> {
  if (which === 'etcd') return startEtcd();
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-cp-kine-'));
  const ds = await startDatastore({ dataDir: dir, listenAddress: '127.0.0.1:0', logger: silentLogger() });
  return {
    endpoint: ds.url,
    async stop() {
      await ds.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A running test API: the server, its store and metrics. `close()` stops both. */
export interface TestApi {
  srv: ApiServer;
  store: ResourceStore;
  registry: Registry;
  close(): Promise<void>;
}

/**
 * The API on `endpoint` with `creds` (src/pki's ServerCredentials or any with the same fields), on a free
 * loopback port. `/v1/connect` answers 426 (a stand-in for the tunnel, to show the hook works).
 */
export async function startTestApi(
  endpoint: string,
  creds: { certPem: string; keyPem: string; caCertPem: string; adminToken: string; joinToken: string },
  tuning?: EtcdTuning,
): Promise<TestApi> {
  const registry = createRegistry();
  const store = createResourceStore({
    endpoints: endpoint,
    registry,
    ...(tuning === undefined ? {} : { tuning }),
  });
  let ready = true;
  const srv = await createApiServer({
    store,
    logger: silentLogger(),
    tls: creds,
    adminToken: creds.adminToken,
    joinToken: creds.joinToken,
    ready: () => ready,
    registry,
    extraRoutes: (req, res) => {
      if (req.url !== '/v1/connect') return false;
      res.writeHead(426).end();
      return true;
    },
  });
  return {
    srv,
    store,
    registry,
    async close() {
      ready = false;
      await srv.close();
      await store.close();
    },
  };
}
