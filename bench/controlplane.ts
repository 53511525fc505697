/**
 * Control-plane API benchmark. The peer is etcd 3.4 (Debian) driven directly with the `etcd3` client: the
 * floor any API over it pays. vipmesh is the HTTPS API (TLS, bearer token, JSON, vip-pool validation, one
 * Txn per write) in front of the same etcd and in front of the embedded datastore (src/kine), all started
 * in this run on loopback. Prints one figure per line and the ratios.
 *
 *   node --import tsx bench/controlplane.ts [--quick]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { ApiClient, createResourceStore, type Service, type WatchEvent } from '../src/api/index.js';
import { startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { ensureServerCredentials } from '../src/pki/index.js';
import { createApiServer } from '../src/testing/api-server.js';
import { startEtcd } from '../src/testing/datastores.js';
import { recordGoal } from './lib/goals.js';

const quick = process.argv.includes('--quick');
const N = quick ? 300 : 1000;
const CONC = 16;
const LAT = quick ? 50 : 200;

function svc(i: number): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `svc-${i}`, namespace: 'default', labels: { app: `app-${i % 10}` } },
    spec: {
      type: 'LoadBalancer',
      loadBalancerIP: `198.51.100.${(i % 200) + 1}`,
      selector: { app: `app-${i % 10}` },
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    },
  };
}

async function pool(n: number, conc: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: conc }, async () => {
      for (let i = next++; i < n; i = next++) await fn(i);
    }),
  );
  return (n / (performance.now() - t0)) * 1000;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** Put, then wait for the watch event: `LAT` times, one at a time. */
async function latency(
  put: (i: number) => Promise<void>,
  waitFor: (i: number) => Promise<void>,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < LAT; i++) {
    const seen = waitFor(i);
    const t0 = performance.now();
    await put(i);
    await seen;
    out.push(performance.now() - t0);
  }
  return out;
}

function waiter() {
  const pending = new Map<string, () => void>();
  return {
    wait: (key: string) => new Promise<void>((resolve) => pending.set(key, resolve)),
    fire: (key: string) => {
      pending.get(key)?.();
      pending.delete(key);
    },
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-cp-bench-'));
  const etcd = await startEtcd();
  const kine = await startDatastore({
    dataDir: join(dir, 'kine'),
    listenAddress: '127.0.0.1:0',
    logger: silentLogger(),
  });
  const c = await ensureServerCredentials(join(dir, 'pki'));
  try {
    // Peer: raw etcd puts of the same JSON, 16 concurrent.
    const raw = new Etcd3({ hosts: etcd.endpoint });
    const body = (i: number) => JSON.stringify(svc(i));
    const rawRate = await pool(N, CONC, (i) => raw.put(`/bench/raw/${i}`).value(body(i)).exec());
    const rw = waiter();
    const rawWatch = await raw.watch().prefix('/bench/lat/').create();
    rawWatch.on('put', (kv) => rw.fire(kv.key.toString()));
    const rawLat = await latency(
      async (i) => {
        await raw.put(`/bench/lat/${i}`).value(body(i)).exec();
      },
      (i) => rw.wait(`/bench/lat/${i}`),
    );
    await rawWatch.cancel();
    raw.close();
    console.log(`etcd 3.4 raw put (etcd3 client, ${CONC} concurrent, ${N} keys): ${rawRate.toFixed(0)}/s`);
    console.log(`etcd 3.4 raw put -> watch event p50: ${pct(rawLat, 50).toFixed(2)} ms`);
    console.log(`etcd 3.4 raw put -> watch event p99: ${pct(rawLat, 99).toFixed(2)} ms`);

    const results: Record<string, { rate: number; p50: number; p99: number; list: number }> = {};
    for (const [name, endpoint] of [
      ['etcd', etcd.endpoint],
      ['kine', kine.url],
    ] as const) {
      const store = createResourceStore({ endpoints: endpoint });
      const srv = await createApiServer({ store, logger: silentLogger(), tls: c, adminToken: c.adminToken });
      const client = await ApiClient.connect({ server: srv.url, token: c.adminToken });
      const rate = await pool(N, CONC, (i) => client.create('services', svc(i)));
      const t0 = performance.now();
      const list = await client.list('services');
      const listMs = performance.now() - t0;
      if (list.items.length !== N) throw new Error(`listed ${list.items.length} of ${N}`);
      const w = waiter();
      const watch = await client.watch(
        'services',
        { namespace: 'lat', resourceVersion: list.metadata.resourceVersion },
        (e: WatchEvent<Service>) => w.fire(e.object.metadata.name),
      );
      const lat = await latency(
        async (i) => {
          await client.create('services', { ...svc(i), metadata: { name: `lat-${i}`, namespace: 'lat' } });
        },
        (i) => w.wait(`lat-${i}`),
      );
      watch.close();
      client.close();
      await srv.close();
      await store.close();
      results[name] = { rate, p50: pct(lat, 50), p99: pct(lat, 99), list: listMs };
      console.log(
        `vipmesh API create Service over HTTPS on ${name} (${CONC} concurrent, ${N}): ${rate.toFixed(0)}/s`,
      );
      console.log(`vipmesh API list ${N} Services on ${name}: ${listMs.toFixed(1)} ms`);
      console.log(`vipmesh API create -> API watch event on ${name} p50: ${pct(lat, 50).toFixed(2)} ms`);
      console.log(`vipmesh API create -> API watch event on ${name} p99: ${pct(lat, 99).toFixed(2)} ms`);
    }
    console.log(
      `bench process RSS (etcd client, 2 API servers and stores, kine, ${2 * N} Services written): ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB`,
    );
    const e = results['etcd']!;
    const k = results['kine']!;
    console.log(`ratio API create on etcd / raw etcd put: ${(e.rate / rawRate).toFixed(2)}`);
    console.log(`ratio API create on kine / raw etcd put: ${(k.rate / rawRate).toFixed(2)}`);
    recordGoal({
      row: 'API create Service over HTTPS on kine, against a raw etcd put',
      now: `${k.rate.toFixed(0)}/s (on etcd ${e.rate.toFixed(0)}/s)`,
      peer: `raw etcd put ${rawRate.toFixed(0)}/s`,
      ratio: `${(k.rate / rawRate).toFixed(2)}x`,
      goal: '>= 0.8x',
      met: k.rate / rawRate >= 0.8,
    });
    console.log(`ratio API watch p50 on etcd / raw etcd watch p50: ${(e.p50 / pct(rawLat, 50)).toFixed(2)}`);
    console.log(`ratio API watch p50 on kine / raw etcd watch p50: ${(k.p50 / pct(rawLat, 50)).toFixed(2)}`);
  } finally {
    await kine.close();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
