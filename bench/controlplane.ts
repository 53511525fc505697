/**
 * Control-plane API benchmark. The peer is etcd 3.4 (Debian) driven directly with the `etcd3` client: the
 * floor any API over it pays. vipmesh is the HTTPS API (TLS, bearer token, JSON, vip-pool validation, one
 * Txn per write) in front of the same etcd and in front of the embedded datastore (src/kine), all started
 * in this run on loopback. The API runs in a process of its own, as `vipmesh server` does (with the
 * embedded datastore in that process, on a unix socket, as the server embeds it); the clients, as kubectl
 * and `vipmesh apply` are, run in this one. Prints one figure per line and the ratios.
 *
 *   node --import tsx bench/controlplane.ts [--quick] [--in-process] [--kine-grpc]
 *
 * For comparison: `--in-process` runs the API servers and the datastore in this process, with the clients,
 * as the bench did before; `--kine-grpc` has the API reach its embedded datastore over gRPC on the socket
 * (as the server did before its in-process Kv) instead of through the datastore's backend.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Etcd3 } from 'etcd3';
import { createEtcdKv } from '../src/api/etcd-kv.js';
import { ApiClient, createResourceStore, type Service, type WatchEvent } from '../src/api/index.js';
import { ResourceStore } from '../src/api/store.js';
import { startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { ensureServerCredentials } from '../src/pki/index.js';
import { EmbeddedKv } from '../src/server/embedded-kv.js';
import { createApiServer } from '../src/testing/api-server.js';
import { startEtcd } from '../src/testing/datastores.js';
import { poolConflicts, validateObject } from '../src/vip-pool/index.js';
import { recordGoal } from './lib/goals.js';

const quick = process.argv.includes('--quick');
const inProcess = process.argv.includes('--in-process');
const kineGrpc = process.argv.includes('--kine-grpc');
const serveAt = process.argv.indexOf('--serve-api');
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

/** A running API server: its URL, its process (none in-process) and how to stop it. */
interface Api {
  url: string;
  pid: number;
  close(): Promise<void>;
}

/**
 * The API in front of `target` (`kine`: an embedded datastore in the same process, on a unix socket in
 * `dir`; else an etcd endpoint), with the credentials in `dir`/pki.
 */
async function startApi(target: string, dir: string): Promise<Api> {
  const kine =
    target === 'kine'
      ? await startDatastore({
          dataDir: join(dir, 'kine'),
          listenAddress: `unix://${join(dir, 'kine', 'kine.sock')}`,
          logger: silentLogger(),
        })
      : undefined;
  const c = await ensureServerCredentials(join(dir, 'pki'));
  // As the server wires its embedded datastore: reads and writes in process, watches over the socket.
  const store =
    kine === undefined || kineGrpc
      ? createResourceStore({ endpoints: kine?.url ?? target })
      : new ResourceStore({
          kv: new EmbeddedKv(kine.backend, createEtcdKv({ endpoints: kine.url })),
          validate: validateObject,
          validateSet: poolConflicts,
        });
  const srv = await createApiServer({ store, logger: silentLogger(), tls: c, adminToken: c.adminToken });
  return {
    url: srv.url,
    pid: process.pid,
    close: async () => {
      await srv.close();
      await store.close();
      await kine?.close();
    },
  };
}

/** `--serve-api TARGET DIR`: {@link startApi} in this process; prints its URL, stops on SIGTERM. */
async function serveApi(target: string, dir: string): Promise<void> {
  const api = await startApi(target, dir);
  process.once('SIGTERM', () => {
    void api.close().then(() => process.exit(0));
  });
  console.log(JSON.stringify({ url: api.url }));
}

/** {@link startApi} in a child process (or in this one with `--in-process`). */
async function spawnApi(target: string, dir: string): Promise<Api> {
  if (inProcess) return startApi(target, dir);
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, 'controlplane.ts'),
      '--serve-api',
      target,
      dir,
      ...(kineGrpc ? ['--kine-grpc'] : []),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const first = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (l) => resolve(l));
    child.once('exit', (code) => reject(new Error(`the API server process exited (${code})`)));
  });
  return {
    url: (JSON.parse(first) as { url: string }).url,
    pid: child.pid!,
    close: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-cp-bench-'));
  const etcd = await startEtcd();
  const c = await ensureServerCredentials(join(dir, 'pki'));
  console.log(
    inProcess
      ? 'API servers and datastore in the bench process, with the clients (--in-process)'
      : `each API server in a process of its own (the embedded datastore in it${kineGrpc ? ', reached over gRPC' : ''}), the clients in the bench process`,
  );
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
    for (const [name, target] of [
      ['etcd', etcd.endpoint],
      ['kine', 'kine'],
    ] as const) {
      const srv = await spawnApi(target, dir);
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
      const apiRss = rssMiB(srv.pid);
      await srv.close();
      console.log(
        `API server process RSS on ${name} after ${N + LAT} creates: ${apiRss.toFixed(0)} MiB${inProcess ? ' (the bench process)' : ''}`,
      );
      results[name] = { rate, p50: pct(lat, 50), p99: pct(lat, 99), list: listMs };
      console.log(
        `vipmesh API create Service over HTTPS on ${name} (${CONC} concurrent, ${N}): ${rate.toFixed(0)}/s`,
      );
      console.log(`vipmesh API list ${N} Services on ${name}: ${listMs.toFixed(1)} ms`);
      console.log(`vipmesh API create -> API watch event on ${name} p50: ${pct(lat, 50).toFixed(2)} ms`);
      console.log(`vipmesh API create -> API watch event on ${name} p99: ${pct(lat, 99).toFixed(2)} ms`);
    }
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
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (serveAt >= 0) await serveApi(process.argv[serveAt + 1]!, process.argv[serveAt + 2]!);
else await main();
