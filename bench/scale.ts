/**
 * Scale run: one server (embedded datastore, controllers, no agents, nothing announced) with tens of
 * thousands of Services in one pool. Creates them through the HTTPS API, waits until every one has an
 * address, lists them with the CLI's paged client, restarts the server on the same data dir and waits until
 * it is master with its controllers idle. Prints the time of each step and the server process's RSS.
 *
 *   node --import tsx bench/scale.ts [count ...]      (default: 10000 50000)
 *
 * The pool is 198.18.0.0/15 (the benchmarking range); nothing leaves the process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient, type KubeObject, type Service } from '../src/api/index.js';
import { silentLogger } from '../src/log.js';
import { type RunningServer, startServer } from '../src/server/index.js';

const CONC = 32;
const counts = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => Number.isSafeInteger(n) && n > 0);

function svc(i: number): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `svc-${i}`, namespace: 'default', labels: { app: `app-${i % 10}` } },
    spec: {
      type: 'LoadBalancer',
      selector: { app: `app-${i % 10}` },
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    },
  };
}

const mib = () => `${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`;

async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const v = await fn();
  console.log(`  ${what}: ${((performance.now() - t0) / 1000).toFixed(1)} s, RSS ${mib()}`);
  return v;
}

async function inParallel(n: number, conc: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

/** Resolves once the server is master, its controllers idle and every Service has an address. */
async function settled(srv: RunningServer, n: number): Promise<void> {
  for (;;) {
    const ctl = srv.controllers();
    if (ctl !== undefined) {
      await ctl.idle();
      const items = [...srv.informers.services.items.values()];
      const done = items.filter((s) => (s.status?.loadBalancer?.ingress?.length ?? 0) > 0).length;
      if (items.length === n && done === n) return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function scale(n: number): Promise<void> {
  console.log(`\n${n} Services`);
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-bench-scale-'));
  const start = () =>
    startServer({
      dataDir: dir,
      nodeName: 'bench',
      httpsListenPort: 0,
      bindAddress: '127.0.0.1',
      clusterCidr: ['198.51.100.0/24'],
      heartbeatMs: 1000,
      nodeLostAfter: 3,
      logger: silentLogger(),
    });
  let srv = await timed('start (empty)', start);
  try {
    const api = new ApiClient(srv.url, srv.credentials.adminToken, srv.credentials.caCertPem, 120_000);
    await api.create('ipaddresspools', {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'IPAddressPool',
      metadata: { name: 'bench', namespace: 'default' },
      spec: { addresses: ['198.18.0.0/15'] },
    } as KubeObject);
    await timed(`create ${n} through the API (${CONC} in flight)`, () =>
      inParallel(n, CONC, (i) => api.create('services', svc(i))),
    );
    await timed('every Service allocated, controllers idle', () => settled(srv, n));
    const listed = await timed('CLI list, pages of 500', () => api.listAll('services'));
    console.log(`    ${listed.items.length} listed`);
    const whole = await timed('API list without limit (one answer)', () => api.list('services'));
    console.log(`    ${whole.items.length} listed, ${JSON.stringify(whole).length} bytes of JSON`);
    api.close();
    await timed('close', () => srv.close());
    srv = await timed('restart (startServer resolves)', start);
    await timed('restart: master, every Service allocated, controllers idle', () => settled(srv, n));
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const n of counts.length > 0 ? counts : [10_000, 50_000]) await scale(n);
