/**
 * Datastore benchmark: vipmesh's `kine` against etcd 3.4 (Debian etcd-server), both started here, on
 * loopback, driven by the same client (`etcd3`) in the same run. Prints one figure per line and the ratios.
 *
 *   node --import tsx bench/kine.ts [--quick]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Etcd3 } from 'etcd3';
import { startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { freePort, startEtcd } from '../test/kine-peers.js';

const quick = process.argv.includes('--quick');
const serveAt = process.argv.indexOf('--serve');
const VALUE = Buffer.alloc(256, 0x61);
const N1 = quick ? 300 : 1500;
const N16 = quick ? 2000 : 8000;
const RANGE_KEYS = 10_000;
const CHURN = quick ? 20_000 : 100_000;
const RSS_KEYS = quick ? 20_000 : 100_000;

interface Peer {
  name: string;
  url: string;
  pid: number;
  /** Bytes of the data files on disk. */
  diskBytes(): number;
  /** Compact during the churn (etcd only: its revision-mode auto-compaction runs every 5 min). */
  clientCompaction: boolean;
  /** The server's own event-loop delay since the last call (vipmesh only), ms. */
  loop?: () => Promise<{ p99: number; max: number }>;
  stop(): Promise<void>;
}

const client = (url: string) =>
  new Etcd3({ hosts: url, grpcOptions: { 'grpc.use_local_subchannel_pool': 1 } as Record<string, number> });

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

async function puts(url: string, clients: number, total: number, prefix: string) {
  const cs = Array.from({ length: clients }, () => client(url));
  for (const c of cs) await c.put(`${prefix}warm`).value('x');
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    cs.map(async (c) => {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        const s = performance.now();
        await c.put(`${prefix}${i}`).value(VALUE);
        lat.push(performance.now() - s);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  for (const c of cs) c.close();
  lat.sort((a, b) => a - b);
  return { rate: total / secs, p50: pct(lat, 50), p99: pct(lat, 99) };
}

async function fill(
  url: string,
  count: number,
  key: (i: number) => string,
  every?: (i: number, c: Etcd3) => Promise<void>,
) {
  const cs = Array.from({ length: 16 }, () => client(url));
  let next = 0;
  await Promise.all(
    cs.map(async (c) => {
      for (;;) {
        const i = next++;
        if (i >= count) return;
        await c.put(key(i)).value(VALUE);
        if (every) await every(i, c);
      }
    }),
  );
  for (const c of cs) c.close();
}

type Figures = Map<string, number[]>;

function add(f: Figures, key: string, v: number): void {
  f.set(key, [...(f.get(key) ?? []), v]);
}

/**
 * The latency and throughput phases run in alternating rounds (etcd, vipmesh, vipmesh, etcd, ...), and each
 * figure is the median over the rounds: the build machine is shared, so load from elsewhere lands on both.
 */
async function measureAlternating(peers: Peer[], out: Map<string, Figures>): Promise<void> {
  const rounds = quick ? 1 : 3;
  const order = (r: number) => (r % 2 === 0 ? peers : [...peers].reverse());
  for (const p of peers) add(out.get(p.name)!, 'RSS MB idle', rssMiB(p.pid));
  for (let r = 0; r < rounds; r++) {
    for (const p of order(r)) {
      const f = out.get(p.name)!;
      const p1 = await puts(p.url, 1, N1, `/p1/${r}/`);
      add(f, 'puts/s, 1 client', p1.rate);
      add(f, 'put p50 ms, 1 client', p1.p50);
      add(f, 'put p99 ms, 1 client', p1.p99);
      await p.loop?.();
      const p16 = await puts(p.url, 16, N16, `/p16/${r}/`);
      add(f, 'puts/s, 16 clients', p16.rate);
      add(f, 'put p50 ms, 16 clients', p16.p50);
      add(f, 'put p99 ms, 16 clients', p16.p99);
      const l16 = await p.loop?.();
      if (l16) {
        add(f, 'server event-loop delay p99 ms, 16-client puts', l16.p99);
        add(f, 'server event-loop delay max ms, 16-client puts', l16.max);
      }
    }
  }
  for (const p of peers) await fill(p.url, RANGE_KEYS, (i) => `/range/${String(i).padStart(6, '0')}`);
  const clients = new Map(peers.map((p) => [p.name, client(p.url)]));
  for (let r = 0; r < 5; r++) {
    for (const p of order(r)) {
      const s = performance.now();
      const n = (await clients.get(p.name)!.getAll().prefix('/range/').exec()).kvs.length;
      add(out.get(p.name)!, 'range of 10000 keys, median ms', performance.now() - s);
      if (n !== RANGE_KEYS) throw new Error(`${p.name}: range returned ${n} keys`);
    }
  }
  const wlat = new Map<string, number[]>(peers.map((p) => [p.name, []]));
  for (let r = 0; r < 3; r++) {
    for (const p of order(r)) {
      const c = clients.get(p.name)!;
      const watcher = await c.watch().key('/watch/k').create();
      for (let i = 0; i < 100; i++) {
        const got = new Promise<number>((resolve) => watcher.once('put', () => resolve(performance.now())));
        const s = performance.now();
        await c.put('/watch/k').value(VALUE);
        wlat.get(p.name)!.push((await got) - s);
      }
      await watcher.cancel();
    }
  }
  for (const p of peers) {
    const l = wlat.get(p.name)!.sort((a, b) => a - b);
    add(out.get(p.name)!, 'put-to-watch-event p50 ms', pct(l, 50));
    add(out.get(p.name)!, 'put-to-watch-event p99 ms', pct(l, 99));
  }
  for (const c of clients.values()) c.close();
}

/** The long phases, one peer at a time: the churn with compaction and the RSS with many keys. */
async function measureVolume(peer: Peer, f: Figures): Promise<void> {
  const c = client(peer.url);
  await peer.loop?.();
  await fill(
    peer.url,
    CHURN,
    (i) => `/churn/${i % 100}`,
    peer.clientCompaction
      ? async (i, cc) => {
          if (i % 5000 === 4999) {
            const rev = Number((await cc.get('/churn/0').exec()).header.revision);
            await cc.kv.compact({ revision: rev - 1000, physical: false }).catch(() => undefined);
          }
        }
      : undefined,
  );
  await new Promise((r) => setTimeout(r, 2500)); // let a pending compaction/checkpoint finish
  add(f, `DB MB on disk after ${CHURN} overwrites of 100 keys`, peer.diskBytes() / 1e6);
  const lc = await peer.loop?.();
  if (lc) {
    add(f, 'server event-loop delay p99 ms, churn with compaction', lc.p99);
    add(f, 'server event-loop delay max ms, churn with compaction', lc.max);
  }
  await c.delete().all();
  await fill(peer.url, RSS_KEYS, (i) => `/rss/${i}`);
  add(f, `RSS MB with ${RSS_KEYS} keys`, rssMiB(peer.pid));
  c.close();
}

/** The vipmesh peer: this file in --serve mode, i.e. startDatastore() as `vipmesh kine` runs it. */
async function startVipmesh(): Promise<Peer> {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-bench-kine-'));
  const port = await freePort();
  const proc: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', 'bench/kine.ts', '--serve', dir, String(port)],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const lines: string[] = [];
  const waiters: Array<(l: string) => void> = [];
  let buf = '';
  proc.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
      nl = buf.indexOf('\n');
    }
  });
  const nextLine = () =>
    new Promise<string>((resolve) => {
      const l = lines.shift();
      if (l !== undefined) resolve(l);
      else waiters.push(resolve);
    });
  const ready = await nextLine();
  if (ready !== 'serving') throw new Error(`vipmesh did not start: ${ready}`);
  const size = (f: string) => (existsSync(f) ? statSync(f).size : 0);
  return {
    name: 'vipmesh kine',
    url: `http://127.0.0.1:${port}`,
    pid: proc.pid!,
    clientCompaction: false,
    diskBytes: () => size(join(dir, 'state.db')) + size(join(dir, 'state.db-wal')),
    async loop() {
      proc.stdin?.write('loop\n');
      return JSON.parse(await nextLine()) as { p99: number; max: number };
    },
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.stdin?.end();
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** --serve DIR PORT: run the datastore (options as `vipmesh kine` with 1 s auto-compaction) and report its event loop. */
async function serve(dir: string, port: number): Promise<void> {
  const ds = await startDatastore({
    dataDir: dir,
    listenAddress: `127.0.0.1:${port}`,
    logger: silentLogger(),
    compaction: { mode: 'revision', retentionRevisions: 1000, intervalMs: 1000 },
  });
  let h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  process.stdout.write('serving\n');
  let pending = '';
  process.stdin.on('data', (d: Buffer) => {
    pending += d.toString();
    while (pending.includes('\n')) {
      pending = pending.slice(pending.indexOf('\n') + 1);
      h.disable();
      process.stdout.write(`${JSON.stringify({ p99: h.percentile(99) / 1e6, max: h.max / 1e6 })}\n`);
      h = monitorEventLoopDelay({ resolution: 1 });
      h.enable();
    }
  });
  await new Promise((resolve) => process.stdin.on('end', resolve));
  h.disable();
  await ds.close();
}

async function startEtcdPeer(): Promise<Peer> {
  const etcd = await startEtcd('default');
  return {
    name: 'etcd 3.4',
    url: etcd.url,
    pid: etcd.proc.pid!,
    clientCompaction: true,
    diskBytes: () => statSync(join(etcd.dataDir, 'member', 'snap', 'db')).size,
    stop: () => etcd.stop(),
  };
}

async function main(): Promise<void> {
  const running: Peer[] = [];
  try {
    console.log(`datastore benchmark${quick ? ' (quick)' : ''}: etcd3 npm client, 256 B values, loopback`);
    console.log(
      'etcd: compacted by the client every 5000 writes (keep 1000); vipmesh: its own auto-compaction (keep 1000, every 1 s)',
    );
    console.log('the churn and RSS phases run on fresh instances of both (one peer at a time)');
    let etcdPeer = await startEtcdPeer();
    running.push(etcdPeer);
    let vip = await startVipmesh();
    running.push(vip);
    const figures = new Map<string, Figures>([
      [etcdPeer.name, new Map()],
      [vip.name, new Map()],
    ]);
    await measureAlternating([etcdPeer, vip], figures);
    await etcdPeer.stop();
    await vip.stop();
    etcdPeer = await startEtcdPeer();
    running.push(etcdPeer);
    await measureVolume(etcdPeer, figures.get(etcdPeer.name)!);
    await etcdPeer.stop();
    vip = await startVipmesh();
    running.push(vip);
    await measureVolume(vip, figures.get(vip.name)!);
    const med = (xs: number[], key: string) =>
      key.includes('max ms') ? Math.max(...xs) : [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const e = figures.get(etcdPeer.name)!;
    const v = figures.get(vip.name)!;
    console.log(`rounds per latency/throughput figure: ${quick ? 1 : 3} (median), alternating peers`);
    for (const [k, evs] of e) {
      const ev = med(evs, k);
      const vv = med(v.get(k)!, k);
      console.log(`etcd ${k}: ${ev.toFixed(2)}`);
      console.log(`vipmesh ${k}: ${vv.toFixed(2)}`);
      console.log(`ratio vipmesh/etcd ${k}: ${(vv / ev).toFixed(2)}`);
    }
    for (const [k, vvs] of v) if (!e.has(k)) console.log(`vipmesh ${k}: ${med(vvs, k).toFixed(2)}`);
  } finally {
    for (const p of running) await p.stop().catch(() => undefined);
  }
}

if (serveAt >= 0) await serve(process.argv[serveAt + 1]!, Number(process.argv[serveAt + 2]));
else await main();
