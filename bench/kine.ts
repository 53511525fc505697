/**
 * Datastore benchmark: vipmesh's `kine` against etcd 3.4 (Debian etcd-server), both started here, on
 * loopback, driven by the same client (`etcd3`) in the same run. Every figure is the median of 3 rounds that
 * alternate between the peers (vipmesh, etcd, vipmesh, etcd, ...), so load from elsewhere on a shared machine
 * lands on both; each row prints both figures, the ratio and the goal, and the load average is printed at the
 * start and the end.
 *
 *   node --import tsx bench/kine.ts [--quick]      (or: npm run bench -- kine)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Etcd3 } from 'etcd3';
import { startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { freePort, startEtcd } from '../test/kine-peers.js';
import { recordGoal } from './lib/goals.js';

const quick = process.argv.includes('--quick');
const serveAt = process.argv.indexOf('--serve');
const VALUE = Buffer.alloc(256, 0x61);
const N1 = quick ? 300 : 1500;
const N16 = quick ? 2000 : 8000;
const RANGE_KEYS = 10_000;
const CHURN = quick ? 20_000 : 100_000;
/** Clients of the churn: only the size it leaves is measured, so as many as keep both servers busy. */
const CHURN_CLIENTS = 64;
const ROUNDS = quick ? 1 : 3;
/** Put-to-watch samples per round: with 100 the p99 would be the single slowest sample. */
const WATCH_N = quick ? 100 : 1000;
/**
 * 10,000-key ranges per round, each figure the median: the first on a fresh connection is slower for both
 * peers (HTTP/2 flow-control windows still small), and with 3 a round's median moved by 30 ms between rounds.
 */
const RANGE_READS = quick ? 3 : 7;

interface Peer {
  name: string;
  url: string;
  pid: number;
  /** Bytes of the data files on disk. */
  diskBytes(): number;
  /** Compact during the churn (etcd only: its revision-mode auto-compaction runs every 5 min). */
  clientCompaction: boolean;
  /** The server's own event-loop delay since the last call (vipmesh --serve only), ms. */
  loop?: () => Promise<{ p99: number; max: number }>;
  stop(): Promise<void>;
}

const client = (url: string) =>
  new Etcd3({ hosts: url, grpcOptions: { 'grpc.use_local_subchannel_pool': 1 } as Record<string, number> });

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
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
  clients: number,
  key: (i: number) => string,
  every?: (i: number, c: Etcd3) => Promise<void>,
) {
  const cs = Array.from({ length: clients }, () => client(url));
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

/** Where the run is, on stderr (the figures go to stdout). */
function progress(what: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${what}\n`);
}

/** Per peer name, per figure, the value of each round. */
type Figures = Map<string, Map<string, number[]>>;

function add(f: Figures, peer: string, key: string, v: number): void {
  const m = f.get(peer) ?? new Map<string, number[]>();
  f.set(peer, m);
  m.set(key, [...(m.get(key) ?? []), v]);
}

/** Throughput, latency, range and watch: ROUNDS rounds, each vipmesh then etcd, on one instance of each. */
async function measureAlternating(peers: Peer[], out: Figures): Promise<void> {
  for (const p of peers) await fill(p.url, RANGE_KEYS, 16, (i) => `/range/${String(i).padStart(6, '0')}`);
  for (let r = 0; r < ROUNDS; r++) {
    for (const p of peers) {
      progress(`round ${r + 1}/${ROUNDS} ${p.name}: puts, range, watch`);
      const p1 = await puts(p.url, 1, N1, `/p1/${r}/`);
      add(out, p.name, 'puts/s, 1 client', p1.rate);
      add(out, p.name, 'put p50 ms, 1 client', p1.p50);
      add(out, p.name, 'put p99 ms, 1 client', p1.p99);
      await p.loop?.();
      const p16 = await puts(p.url, 16, N16, `/p16/${r}/`);
      add(out, p.name, 'puts/s, 16 clients', p16.rate);
      add(out, p.name, 'put p50 ms, 16 clients', p16.p50);
      add(out, p.name, 'put p99 ms, 16 clients', p16.p99);
      const l16 = await p.loop?.();
      if (l16) {
        add(out, p.name, 'server event-loop delay p99 ms, 16-client puts', l16.p99);
        add(out, p.name, 'server event-loop delay max ms, 16-client puts', l16.max);
      }
      const c = client(p.url);
      const ranges: number[] = [];
      for (let i = 0; i < RANGE_READS; i++) {
        const s = performance.now();
        const n = (await c.getAll().prefix('/range/').exec()).kvs.length;
        ranges.push(performance.now() - s);
        if (n !== RANGE_KEYS) throw new Error(`${p.name}: range returned ${n} keys`);
      }
      add(out, p.name, `range of ${RANGE_KEYS} keys ms`, median(ranges));
      const watcher = await c.watch().key('/watch/k').create();
      const lat: number[] = [];
      for (let i = 0; i < WATCH_N; i++) {
        const got = new Promise<number>((resolve) => watcher.once('put', () => resolve(performance.now())));
        const s = performance.now();
        await c.put('/watch/k').value(VALUE);
        lat.push((await got) - s);
      }
      await watcher.cancel();
      c.close();
      lat.sort((a, b) => a - b);
      add(out, p.name, 'put-to-watch-event p50 ms', pct(lat, 50));
      add(out, p.name, 'put-to-watch-event p99 ms', pct(lat, 99));
      add(out, p.name, 'put-to-watch-event max ms', lat.at(-1)!);
    }
  }
}

/** Resolve once the data files have not shrunk for 2 s (a compaction that was running has finished), at most 15 s. */
async function sizeSettled(peer: Peer): Promise<number> {
  let low = peer.diskBytes();
  let since = performance.now();
  const t0 = since;
  while (performance.now() - since < 2000 && performance.now() - t0 < 15_000) {
    await new Promise((r) => setTimeout(r, 250));
    const now = peer.diskBytes();
    if (now < low) {
      low = now;
      since = performance.now();
    }
  }
  return peer.diskBytes();
}

/**
 * Idle RSS and size after churn: ROUNDS rounds, each a fresh `vipmesh kine` then a fresh etcd. The idle RSS
 * is read 1 s after the server answers, before any write; then CHURN overwrites of 100 keys with compaction.
 */
async function measureVolume(out: Figures): Promise<void> {
  for (let r = 0; r < ROUNDS; r++) {
    for (const start of [startVipmeshCli, startEtcdPeer]) {
      const peer = await start();
      progress(`round ${r + 1}/${ROUNDS} ${peer.name}: idle RSS, churn`);
      try {
        await new Promise((res) => setTimeout(res, 1000));
        add(out, peer.name, 'idle RSS MB', rssMiB(peer.pid));
        await fill(
          peer.url,
          CHURN,
          CHURN_CLIENTS,
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
        add(
          out,
          peer.name,
          `DB MB after ${CHURN} overwrites of 100 keys + compaction`,
          (await sizeSettled(peer)) / 1e6,
        );
      } finally {
        await peer.stop();
      }
    }
  }
}

/** The vipmesh peer for the throughput rounds: this file in --serve mode, i.e. startDatastore() as `vipmesh kine` runs it. */
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
  return {
    name: 'vipmesh',
    url: `http://127.0.0.1:${port}`,
    pid: proc.pid!,
    clientCompaction: false,
    diskBytes: () => sqliteBytes(dir),
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

/** state.db with its -wal and -shm files. */
function sqliteBytes(dir: string): number {
  const size = (f: string) => (existsSync(f) ? statSync(f).size : 0);
  return ['state.db', 'state.db-wal', 'state.db-shm'].reduce((n, f) => n + size(join(dir, f)), 0);
}

/**
 * How `vipmesh kine` is run: the built dist/cli/main.js when it is newer than every source file (as
 * installed), else src/cli/main.ts under tsx, whose loader thread adds to the RSS (said in the output).
 */
function vipmeshCommand(): { args: string[]; how: string } {
  const dist = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
  // What the build compiles: not the tests, not src/testing (tsconfig.build.json).
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true })
        .filter((e) => !e.name.endsWith('.test.ts') && !(e.isDirectory() && e.name === 'testing'))
        .map((e) => (e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs)),
    );
  if (existsSync(dist) && statSync(dist).mtimeMs >= newest(join(import.meta.dirname, '..', 'src'))) {
    return { args: [dist], how: 'dist/cli/main.js (npm run build)' };
  }
  return {
    args: ['--import', 'tsx', join(import.meta.dirname, '..', 'src', 'cli', 'main.ts')],
    how: 'src/cli/main.ts under tsx (dist/ missing or older than src/: run npm run build for the installed figure)',
  };
}

/** Decided once per run, so every round runs the same build. */
const VIPMESH = vipmeshCommand();

/** A fresh `vipmesh kine` (keep 1000 revisions, compaction checked every 1 s), for the volume rounds. */
async function startVipmeshCli(): Promise<Peer> {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-bench-kine-'));
  const port = await freePort();
  const proc = spawn(
    process.execPath,
    [
      ...VIPMESH.args,
      'kine',
      '--listen-address',
      `127.0.0.1:${port}`,
      '--data-dir',
      dir,
      '--auto-compaction-retention',
      '1000',
      '--compaction-interval',
      '1s',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VIPMESH_LOG_LEVEL: 'info' } },
  );
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const seen = (d: Buffer) => {
      out += d.toString();
      if (out.includes('datastore serving')) resolve();
    };
    proc.stdout.on('data', seen);
    proc.stderr.on('data', seen);
    proc.once('exit', () => reject(new Error(`vipmesh kine exited before serving: ${out}`)));
  });
  proc.stdout.removeAllListeners('data');
  proc.stderr.removeAllListeners('data');
  proc.stdout.resume();
  proc.stderr.resume();
  return {
    name: 'vipmesh',
    url: `http://127.0.0.1:${port}`,
    pid: proc.pid!,
    clientCompaction: false,
    diskBytes: () => sqliteBytes(dir),
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
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
    name: 'etcd',
    url: etcd.url,
    pid: etcd.proc.pid!,
    clientCompaction: true,
    diskBytes: () => statSync(join(etcd.dataDir, 'member', 'snap', 'db')).size,
    stop: () => etcd.stop(),
  };
}

/** The rows with a goal: vipmesh/etcd must be at least (`min`) or at most (`max`) `ratio`, or vipmesh at most `abs`. */
const ROWS: Array<{ key: string; goal: { min?: number; max?: number; abs?: number } }> = [
  { key: 'puts/s, 1 client', goal: { min: 1 } },
  { key: 'puts/s, 16 clients', goal: { min: 1 } },
  { key: `range of ${RANGE_KEYS} keys ms`, goal: { max: 1 } },
  { key: 'put-to-watch-event p50 ms', goal: { max: 1 } },
  { key: 'put-to-watch-event p99 ms', goal: { max: 1 } },
  { key: `DB MB after ${CHURN} overwrites of 100 keys + compaction`, goal: { max: 2 } },
  { key: 'idle RSS MB', goal: { abs: 50 } },
];

function report(f: Figures): void {
  const v = f.get('vipmesh')!;
  const e = f.get('etcd')!;
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(2)).join('/');
  const line = (key: string, goal?: { min?: number; max?: number; abs?: number }) => {
    const vv = median(v.get(key)!);
    const ev = e.has(key) ? median(e.get(key)!) : undefined;
    let text = `${key}: vipmesh ${vv.toFixed(2)} (rounds ${fmt(v.get(key)!)})`;
    if (ev !== undefined) {
      text += `, etcd ${ev.toFixed(2)} (rounds ${fmt(e.get(key)!)}), ratio ${(vv / ev).toFixed(2)}x`;
    }
    if (goal) {
      const ratio = ev === undefined ? Number.NaN : vv / ev;
      const [want, met] =
        goal.min !== undefined
          ? [`>=${goal.min.toFixed(1)}x`, ratio >= goal.min]
          : goal.max !== undefined
            ? [`<=${goal.max.toFixed(1)}x`, ratio <= goal.max]
            : [`<=${goal.abs} MB`, vv <= goal.abs!];
      text += `; goal ${want}: ${met ? 'met' : 'MISSED'}`;
      recordGoal({
        row: `kine ${key}`,
        now: `${vv.toFixed(2)} (median of ${v.get(key)!.length})`,
        ...(ev === undefined ? {} : { peer: `etcd ${ev.toFixed(2)}`, ratio: `${(vv / ev).toFixed(2)}x` }),
        goal: want,
        met,
      });
    }
    console.log(text);
  };
  for (const r of ROWS) line(r.key, r.goal);
  for (const key of v.keys()) if (!ROWS.some((r) => r.key === key)) line(key);
}

const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  const running: Peer[] = [];
  const t0 = performance.now();
  try {
    console.log(`datastore benchmark${quick ? ' (quick)' : ''}: etcd3 npm client, 256 B values, loopback`);
    console.log(`load average at start (1/5/15 min): ${load()}`);
    console.log(
      `medians of ${ROUNDS} rounds alternating vipmesh, etcd; throughput/range/watch on one instance each, ` +
        'idle RSS and the churn on a fresh instance each round',
    );
    console.log(
      `churn: ${CHURN} overwrites of 100 keys by ${CHURN_CLIENTS} clients; etcd compacted by the client every 5000 ` +
        'writes (keep 1000), vipmesh by its own auto-compaction (keep 1000, every 1 s)',
    );
    console.log(
      'DB MB: vipmesh state.db + -wal + -shm; etcd member/snap/db (its WAL directory, 64 MB preallocated segments, not counted)',
    );
    console.log(`vipmesh kine for idle RSS and churn: ${VIPMESH.how}`);
    const vip = await startVipmesh();
    running.push(vip);
    const etcdPeer = await startEtcdPeer();
    running.push(etcdPeer);
    const figures: Figures = new Map();
    await measureAlternating([vip, etcdPeer], figures);
    for (const p of running.splice(0)) await p.stop();
    await measureVolume(figures);
    report(figures);
    console.log(`load average at end (1/5/15 min): ${load()}`);
    console.log(`total ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  } finally {
    for (const p of running) await p.stop().catch(() => undefined);
  }
}

if (serveAt >= 0) await serve(process.argv[serveAt + 1]!, Number(process.argv[serveAt + 2]));
else await main();
