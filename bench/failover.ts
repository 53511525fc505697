/**
 * Failover benchmark: the time a client is without service when the VIP holder's cable is
 * pulled, over TRIALS trials (default 20), for keepalived 2.2 (VRRPv3 advert_int 0.1; VRRPv2 defaults)
 * and vipmesh with its defaults (1 VIP; 100 VIPs all held by the dead node), in one run on one topology:
 * a bridge, two nodes, a client connecting every 5 ms (for vipmesh to a Service port that only the holder's
 * DNAT rules serve, see SERVICE_PORT). Also: server start to ready, server RSS with 1,000
 * Services, agent RSS with 256 VIPs, `vipmesh kine` idle RSS, the daemons run with the NODE_OPTIONS of their
 * systemd units (`--node-options none`: without). And the planned hand-over: the holder's agent SIGTERMed
 * (what `systemctl stop` does) ROUNDS times (default 10) while the client connects every 5 ms, with the
 * default make-before-break and, for comparison, with `--handover-timeout 0` (the VIP goes when the agent
 * does), then ROUNDS `vipmesh drain`s of the holder (its agent keeps running; uncordoned after each), then
 * up to 5 SIGTERMs of the server whose local agent holds the VIP (the VIP brought back to it after each);
 * goal: a client gap of at most 20 ms and no failed connection. Last, a soak (bench/lib/soak.ts):
 * false failovers while no node dies, both cores saturated by stress-ng and the agents' heaps churned;
 * 2 minutes by default, `--soak MINUTES` runs only it (the goal is 0 in 10). Needs root; measures the
 * compiled CLI (runs `npm run build` first).
 *   node --import tsx bench/failover.ts [--trials N] [--rounds N]
 *     [--only keepalived|vipmesh|handover|soak|footprint] [--soak MINUTES] [--churn MB/s]
 *     [--node-options none|FLAGS] [--heartbeat 50ms] [--v8-flags none|FLAGS] [--malloc-trim none|BYTES]
 *     [--vips N: only the vipmesh failover row with N VIPs on the dead node]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LabCluster } from '../src/lab/cluster.js';
import {
  measureCut,
  measureHandover,
  Prober,
  preciseNow,
  startNameServer,
  summarize,
} from '../src/lab/failover.js';
import { canUseNetns, Lab } from '../src/lab/index.js';
import { recordGoal } from './lib/goals.js';
import { startKeepalived, type VrrpSettings } from './lib/keepalived.js';
import { reportSoak, soak } from './lib/soak.js';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '10' },
    only: { type: 'string' },
    /** Run only the vipmesh failover row with this many VIPs on the dead node (A/B comparisons). */
    vips: { type: 'string' },
    soak: { type: 'string' },
    churn: { type: 'string', default: '32' },
    'node-options': { type: 'string' },
    'v8-flags': { type: 'string' },
    'malloc-trim': { type: 'string' },
    /** `--heartbeat-interval` of the server and agents in the failover and soak runs [their default]. */
    heartbeat: { type: 'string' },
  },
});
const TRIALS = Number(values.trials);
const ROUNDS = Number(values.rounds);
const VIP = '198.51.100.100';
const ROOT = join(import.meta.dirname, '..');
const DAEMON_ARGS = values.heartbeat === undefined ? [] : ['--heartbeat-interval', values.heartbeat];
const DEFAULTS = values.heartbeat === undefined ? 'defaults' : `--heartbeat-interval ${values.heartbeat}`;

function report(label: string, outages: number[]): { median: number; p99: number } {
  const s = summarize(outages);
  console.log(
    `${label}: median ${s.median.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms, min ${s.min.toFixed(1)} ms, max ${s.max.toFixed(1)} ms (n=${s.n})`,
  );
  return s;
}

async function twoNodeLab(withServer: boolean): Promise<Lab> {
  const lab = await Lab.create();
  if (withServer) await lab.addNode('s1', { ipv4: '198.51.100.10/24' });
  await lab.addNode('n1', { ipv4: '198.51.100.11/24' });
  await lab.addNode('n2', { ipv4: '198.51.100.12/24' });
  await lab.addNode('c1', { ipv4: '198.51.100.50/24' });
  await startNameServer(lab, 'n1');
  await startNameServer(lab, 'n2');
  return lab;
}

/** Cut the holder TRIALS times; each trial's outage is the worst over the probed VIPs. */
async function cutTrials(lab: Lab, probers: Prober[], settleMs: number): Promise<number[]> {
  await Promise.all(probers.map((p) => p.stable(settleMs, 120_000)));
  const outages: number[] = [];
  /** Several probed VIPs: every VIP's outage of every cut, besides the worst of each cut. */
  const perVip: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const first = probers[0]!;
    const last = await first.waitFor((l) => l.ok, 20_000, Math.max(0, first.lines.length - 1));
    const victim = last.from!;
    if (probers.length === 1) {
      const r = await measureCut(lab, first);
      outages.push(r.outageMs);
    } else {
      const marks = probers.map((p) => p.lines.length);
      const cutAt = preciseNow();
      await lab.cut(victim);
      const answers = await Promise.all(
        probers.map((p, j) => p.waitFor((l) => l.ok && l.t >= cutAt && l.from !== victim, 30_000, marks[j])),
      );
      const each = answers.map((a) => a.t - cutAt);
      perVip.push(...each);
      outages.push(Math.max(...each));
    }
    await lab.restore(victim);
    await Promise.all(probers.map((p) => p.stable(settleMs, 120_000)));
  }
  for (const p of probers) p.stop();
  if (perVip.length > 0) {
    const s = summarize(perVip);
    console.log(
      `  each probed VIP on its own (n=${s.n}): median ${s.median.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms (the row is the worst of ${probers.length} per cut)`,
    );
  }
  return outages;
}

async function keepalivedRun(label: string, s: VrrpSettings): Promise<{ median: number; p99: number }> {
  const lab = await twoNodeLab(false);
  try {
    startKeepalived(lab, ['n1', 'n2'], VIP, s);
    const outages = await cutTrials(lab, [new Prober(lab, 'c1', VIP)], Math.max(1500, s.advertInt * 4000));
    return report(label, outages);
  } finally {
    await lab.destroy();
  }
}

/**
 * The port the clients connect to. The Services send it to targetPort 8080, where each node's name server
 * listens, so only a holder whose DNAT rules are in answers: a VIP announced ahead of its rules refuses the
 * connection (the VIP is on lo, nothing listens on this port), and the outage counts until the rules are in.
 */
const SERVICE_PORT = 80;

function servicesYaml(n: number, first: number, v6: boolean): string {
  const docs: string[] = [];
  for (let i = 0; i < n; i++) {
    const ip = v6 ? `2001:db8::${(0x1000 + first + i).toString(16)}` : `198.51.100.${first + i}`;
    docs.push(
      `apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-${first + i}\n  namespace: bench\nspec:\n  type: LoadBalancer\n  loadBalancerIP: ${ip}\n  ports:\n    - port: ${SERVICE_PORT}\n      targetPort: 8080\n      protocol: TCP\n`,
    );
  }
  return docs.join('---\n');
}

const POOLS = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench4, namespace: metallb-system}
spec: {addresses: [198.51.100.100-198.51.100.199]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench6, namespace: metallb-system}
spec: {addresses: ["2001:db8::1000/116"]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: bench, namespace: metallb-system}
spec: {ipAddressPools: [bench4, bench6]}
`;

async function vipmeshRun(vipCount: number): Promise<{ median: number; p99: number }> {
  const lab = await twoNodeLab(true);
  const cluster = new LabCluster(lab, 's1', '198.51.100.10');
  try {
    const readyMs = await cluster.startServer(DAEMON_ARGS);
    if (vipCount === 1) console.log(`vipmesh server start to API ready: ${readyMs} ms`);
    // All VIPs start on n1 (n2 joins after they are placed; placement is sticky), so n1's death moves all.
    cluster.startAgent('n1', '198.51.100.11', DAEMON_ARGS);
    await cluster.waitReady(['n1']);
    const file = join(cluster.dir, 'bench.yaml');
    writeFileSync(file, `${POOLS}---\n${servicesYaml(vipCount, 100, false)}`);
    await cluster.apply(file);
    const probed =
      vipCount === 1 ? [VIP] : Array.from({ length: 10 }, (_, i) => `198.51.100.${100 + i * 10}`);
    const probers = probed.map((vip) => new Prober(lab, 'c1', vip, SERVICE_PORT, vipCount === 1 ? 5 : 10));
    await Promise.all(probers.map((p) => p.stable(1000, 120_000)));
    cluster.startAgent('n2', '198.51.100.12', DAEMON_ARGS);
    await cluster.waitReady(['n1', 'n2']);
    const outages = await cutTrials(lab, probers, 1500);
    const label =
      vipCount === 1
        ? `vipmesh ${DEFAULTS}, 1 VIP`
        : `vipmesh ${DEFAULTS}, ${vipCount} VIPs on the dead node (worst of ${probed.length} probed VIPs)`;
    return report(label, outages);
  } finally {
    await lab.destroy();
    cluster.cleanup();
  }
}

/**
 * SIGTERM the holder's agent `rounds` times (starting it again after each round, so the VIP goes back and
 * forth between n1 and n2), or drain it, or (`server`) SIGTERM the server whose local agent holds the VIP
 * (started again after each round, then n1 and n2 drained and uncordoned to bring the VIP back to it), and
 * print the client's longest gap and failed connections per round.
 */
async function handoverRun(
  rounds: number,
  agentArgs: string[],
  label: string,
  how: 'sigterm' | 'drain' | 'server' = 'sigterm',
): Promise<{ gapMedian: number; gapMax: number; failed: number; rounds: number }> {
  const lab = await twoNodeLab(true);
  const cluster = new LabCluster(lab, 's1', '198.51.100.10');
  const ips: Record<string, string> = { n1: '198.51.100.11', n2: '198.51.100.12' };
  const file = join(cluster.dir, 'bench.yaml');
  writeFileSync(file, `${POOLS}---\n${servicesYaml(1, 100, false)}`);
  const serverHolds = how === 'server';
  try {
    if (serverHolds) {
      // Applied while the server's node is the only one, so it holds the VIP (placement is sticky).
      await startNameServer(lab, 's1');
      await cluster.startServerHolding(file);
    } else {
      await cluster.startServer();
    }
    for (const [n, ip] of Object.entries(ips)) cluster.startAgent(n, ip, agentArgs);
    await cluster.waitReady(Object.keys(ips));
    if (!serverHolds) await cluster.apply(file);
    const prober = new Prober(lab, 'c1', VIP, SERVICE_PORT, 5);
    await prober.stable(1000, 120_000);
    const gaps: number[] = [];
    const stops: number[] = [];
    const quiet: number[] = [];
    let failed = 0;
    for (let i = 0; i < rounds; i++) {
      const r = await measureHandover(prober, async (victim) => {
        if (how !== 'drain') return cluster.stop(victim);
        const d = await cluster.vipmesh(['drain', victim]);
        if (d.code !== 0) throw new Error(`vipmesh drain ${victim} failed: ${d.stderr}`);
      });
      if (serverHolds && r.victim !== 's1')
        throw new Error(`the VIP was on ${r.victim}, not the server's node`);
      gaps.push(r.gapMs);
      stops.push(r.stopMs);
      failed += r.failed;
      quiet.push(r.quietGapMs);
      console.log(
        `  round ${i + 1}: ${r.victim} -> ${r.newHolder}, gap ${r.gapMs.toFixed(1)} ms (${r.quietGapMs.toFixed(1)} ms in the second before), failed ${r.failed}${r.failures.length > 0 ? ` (${r.failures.map((f) => `${f.why} ${f.atMs.toFixed(0)} ms after the signal`).join(', ')})` : ''}, exit after ${r.stopMs.toFixed(0)} ms`,
      );
      if (how === 'sigterm') cluster.startAgent(r.victim, ips[r.victim]!, agentArgs);
      // A drained node is uncordoned; the VIP stays where it went, so the next round drains the other.
      else if (how === 'drain') await cluster.vipmesh(['uncordon', r.victim]);
      else await serverTakesBack(cluster, Object.keys(ips));
      await cluster.waitReady(Object.keys(ips));
      await prober.stable(1000, 120_000);
    }
    prober.stop();
    const g = summarize(gaps);
    const st = summarize(stops);
    const q = summarize(quiet);
    console.log(
      `${label}: client gap median ${g.median.toFixed(1)} ms, max ${g.max.toFixed(1)} ms; failed connections ${failed}; ${how === 'drain' ? 'drain command' : 'SIGTERM to exit'} median ${st.median.toFixed(0)} ms (n=${g.n}, client every 5 ms, attempt timeout 200 ms; the client's own longest gap in the second before the signal: median ${q.median.toFixed(1)} ms, max ${q.max.toFixed(1)} ms)`,
    );
    return { gapMedian: g.median, gapMax: g.max, failed, rounds: g.n };
  } finally {
    await lab.destroy();
    cluster.cleanup();
  }
}

/** The failover rows of the goals: 1 VIP (against keepalived tuned, when it ran) and 100 VIPs. */
function recordFailoverGoals(r: Map<string, { median: number; p99: number }>): void {
  const kv3 = r.get('kv3');
  const ms = (x: { median: number; p99: number }) => `${x.median.toFixed(1)} / ${x.p99.toFixed(1)} ms`;
  for (const [key, what] of [
    ['vm1', '1 VIP'],
    ['vm100', '100 VIPs on the dead node'],
  ] as const) {
    const v = r.get(key);
    if (v === undefined) continue;
    const fast = v.median <= 150 && v.p99 <= 250;
    const vsPeer = kv3 === undefined ? undefined : [v.median / kv3.median, v.p99 / kv3.p99];
    const withPeer = key === 'vm1' && vsPeer !== undefined;
    recordGoal({
      row: `failover, holder's cable pulled, ${what}: median / p99`,
      now: ms(v),
      ...(kv3 === undefined
        ? {}
        : {
            peer: `keepalived VRRPv3 advert_int 0.1 ${ms(kv3)}`,
            ratio: `${vsPeer![0]!.toFixed(2)}x / ${vsPeer![1]!.toFixed(2)}x`,
          }),
      goal: withPeer
        ? '<= 150 / 250 ms and <= 0.5x keepalived'
        : `<= 150 / 250 ms${key === 'vm1' ? ' (and <= 0.5x keepalived: not run)' : ''}`,
      met: fast && (!withPeer || (vsPeer![0]! <= 0.5 && vsPeer![1]! <= 0.5)),
    });
  }
}

/** Start the stopped server again and drain `agents` (then uncordon them), so its node holds the VIP again. */
async function serverTakesBack(cluster: LabCluster, agents: string[]): Promise<void> {
  await cluster.startServer([], { localAgent: true });
  await cluster.waitReady(['s1', ...agents]);
  for (const args of [
    ['drain', ...agents],
    ['uncordon', ...agents],
  ]) {
    const r = await cluster.vipmesh(args);
    if (r.code !== 0) throw new Error(`vipmesh ${args.join(' ')} failed: ${r.stderr}`);
  }
}

/** The value of `name` in a systemd unit's Environment= lines ('' when it sets none). */
function unitEnv(unit: string, name: string): string {
  const text = readFileSync(join(ROOT, 'systemd', `${unit}.service`), 'utf8');
  return new RegExp(`^Environment="?${name}=([^"\\n]*)"?$`, 'm').exec(text)?.[1] ?? '';
}

/**
 * What the footprint's daemons run with: NODE_OPTIONS, VIPMESH_V8_FLAGS and MALLOC_TRIM_THRESHOLD_ as the
 * agent unit sets them (the server unit must say the same: the lab hands one environment to every daemon),
 * or what `--node-options` / `--v8-flags` / `--malloc-trim` say instead (`none`: unset).
 */
function footprintEnv(): { NODE_OPTIONS: string; VIPMESH_V8_FLAGS: string; MALLOC_TRIM_THRESHOLD_: string } {
  const pick = (
    name: 'NODE_OPTIONS' | 'VIPMESH_V8_FLAGS' | 'MALLOC_TRIM_THRESHOLD_',
    given: string | undefined,
  ): string => {
    if (given !== undefined) return given === 'none' ? '' : given;
    const agent = unitEnv('vipmesh-agent', name);
    const server = unitEnv('vipmesh-server', name);
    if (agent !== server) throw new Error(`the units' ${name} differ: agent "${agent}", server "${server}"`);
    return agent;
  };
  return {
    NODE_OPTIONS: pick('NODE_OPTIONS', values['node-options']),
    VIPMESH_V8_FLAGS: pick('VIPMESH_V8_FLAGS', values['v8-flags']),
    MALLOC_TRIM_THRESHOLD_: pick('MALLOC_TRIM_THRESHOLD_', values['malloc-trim']),
  };
}

/** Run `fn` with the variables in `vars` set ('' : unset) for the children it starts. */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const set = (k: string, v: string | undefined): void => {
    if (v === undefined || v === '') delete process.env[k];
    else process.env[k] = v;
  };
  for (const [k, v] of Object.entries(vars)) set(k, v);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(before)) set(k, v);
  }
}

/** RSS and its anonymous and file parts of an idle `vipmesh kine` (fresh data file, nothing written), 5 s after it serves, MiB. */
async function kineIdleRssMiB(): Promise<{ rss: number; anon: number; file: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-bench-kine-'));
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'dist', 'cli', 'main.js'),
      'kine',
      '--listen-address',
      `127.0.0.1:${port}`,
      '--data-dir',
      dir,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VIPMESH_CONFIG: join(dir, 'none.yaml') } },
  );
  try {
    writeFileSync(join(dir, 'none.yaml'), '');
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      out += b.toString();
    });
    const deadline = Date.now() + 60_000;
    while (!/listening|serving/i.test(out)) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`vipmesh kine did not start: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 5000));
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const field = (name: string): number =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) / 1024;
    return { rss: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Create `n` IPv6 Services from number `first` on, 64 per `vipmesh apply`: on a loaded machine one apply of
 * 256 ran past the lab's 60 s limit on a command.
 */
async function applyInChunks(cluster: LabCluster, n: number, first: number): Promise<void> {
  for (let i = 0; i < n; i += 64) {
    const file = join(cluster.dir, `svc-${first + i}.yaml`);
    writeFileSync(file, servicesYaml(Math.min(64, n - i), first + i, true));
    // 180 s: at load average 10-30 on 2 cores an apply of 64 took over 60 s.
    await cluster.apply(file, 180_000);
  }
}

/** "anon A, file F" of an RSS split: its own memory, and the file pages shared with other node processes. */
function split(s: { anon: number; file: number }): string {
  return `anon ${s.anon.toFixed(1)}, file ${s.file.toFixed(1)}`;
}

/** The V8 heap in use of the daemon on `node`, from its metrics endpoint (default address), MiB. */
async function heapUsedMiB(lab: Lab, node: string): Promise<string> {
  const r = await lab.exec(node, ['curl', '-s', '--max-time', '10', 'http://127.0.0.1:7472/metrics']);
  const m = /^nodejs_heap_used_bytes (\S+)$/m.exec(r.stdout);
  return m === null ? '?' : (Number(m[1]) / 2 ** 20).toFixed(1);
}

/** The footprint rows, each with its goal, under the units' environment (see {@link footprintEnv}). */
async function footprintRows(): Promise<void> {
  const env = footprintEnv();
  console.log(
    `footprint: NODE_OPTIONS="${env.NODE_OPTIONS}" VIPMESH_V8_FLAGS="${env.VIPMESH_V8_FLAGS}" MALLOC_TRIM_THRESHOLD_="${env.MALLOC_TRIM_THRESHOLD_}"; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  await withEnv(env, () => footprint());
  const kine = await withEnv(env, () => kineIdleRssMiB());
  console.log(`vipmesh kine idle RSS: ${kine.rss.toFixed(1)} MiB (${split(kine)}; goal 50 MB = 47.7 MiB)`);
  recordGoal({
    row: '`vipmesh kine` idle RSS',
    now: `${kine.rss.toFixed(1)} MiB (${split(kine)})`,
    goal: '<= 50 MB (47.7 MiB)',
    met: kine.rss <= 50e6 / 2 ** 20,
  });
  console.log(
    `footprint done; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
}

async function footprint(): Promise<void> {
  const lab = await Lab.create();
  await lab.addNode('s1', { ipv4: '198.51.100.10/24' });
  await lab.addNode('n1', { ipv4: '198.51.100.11/24' });
  const cluster = new LabCluster(lab, 's1', '198.51.100.10');
  try {
    await cluster.startServer();
    cluster.startAgent('n1', '198.51.100.11');
    await cluster.waitReady(['n1']);
    const pools = join(cluster.dir, 'pools.yaml');
    writeFileSync(pools, POOLS);
    await cluster.apply(pools);
    await applyInChunks(cluster, 256, 0);
    await cluster.until(
      '256 VIPs on n1',
      async () => {
        const out = await lab.exec('n1', ['ip', '-6', 'addr', 'show', 'dev', 'lo']);
        const n = (out.stdout.match(/2001:db8::1/g) ?? []).length;
        return n >= 256 ? true : undefined;
      },
      180_000,
    );
    const agentRss = cluster.rssMiB('n1');
    const agentSplit = split(cluster.rssSplitMiB('n1'));
    console.log(
      `vipmesh agent RSS holding 256 VIPs: ${agentRss.toFixed(1)} MiB (${agentSplit}; peak ${cluster.peakRssMiB('n1').toFixed(1)} MiB, heap used ${await heapUsedMiB(lab, 'n1')} MiB; goal 60)`,
    );
    recordGoal({
      row: 'agent RSS holding 256 VIPs',
      now: `${agentRss.toFixed(1)} MiB (${agentSplit})`,
      peer: 'k3s documents 75 MB for its agent',
      goal: '<= 60 MiB',
      met: agentRss <= 60,
    });
    await applyInChunks(cluster, 744, 256);
    await cluster.until(
      '1,000 Services with addresses',
      async () => {
        const r = await cluster.vipmesh(['get', 'services', '-n', 'bench', '-o', 'json']);
        if (r.code !== 0) return undefined;
        const items = (
          JSON.parse(r.stdout) as { items: Array<{ status?: { loadBalancer?: { ingress?: unknown[] } } }> }
        ).items;
        return items.filter((s) => (s.status?.loadBalancer?.ingress?.length ?? 0) > 0).length >= 1000
          ? true
          : undefined;
      },
      300_000,
    );
    const serverRss = cluster.rssMiB('s1');
    const serverSplit = split(cluster.rssSplitMiB('s1'));
    console.log(
      `vipmesh server RSS with 1,000 Services: ${serverRss.toFixed(1)} MiB (${serverSplit}; peak ${cluster.peakRssMiB('s1').toFixed(1)} MiB, heap used ${await heapUsedMiB(lab, 's1')} MiB; goal 150)`,
    );
    recordGoal({
      row: 'server RSS with 1,000 Services',
      now: `${serverRss.toFixed(1)} MiB (${serverSplit})`,
      goal: '<= 150 MiB',
      met: serverRss <= 150,
    });
  } finally {
    await lab.destroy();
    cluster.cleanup();
  }
}

function loadText(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');
}

/** The soak: `--soak MINUTES` (or `--only soak`) runs only it; the default run soaks for 2 minutes. */
async function soakRun(minutes: number): Promise<void> {
  const vips = 20;
  const o = {
    minutes,
    churnMbPerSecond: Number(values.churn),
    pools: POOLS,
    services: servicesYaml(vips, 100, false),
    vips,
    daemonArgs: DAEMON_ARGS,
  };
  reportSoak(await soak(o), o);
}

async function main(): Promise<void> {
  if (!canUseNetns()) throw new Error('bench/failover.ts needs root and ip netns');
  console.log(`load average at start (1, 5, 15 min): ${loadText()}`);
  if (values.only !== 'keepalived') {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' });
    process.env['VIPMESH_LAB_CLI'] = join(ROOT, 'dist', 'cli', 'main.js');
  }
  if (values.soak !== undefined || values.only === 'soak') {
    await soakRun(Number(values.soak ?? 2));
    return;
  }
  if (values.only === 'footprint') {
    await footprintRows();
    return;
  }
  if (values.vips !== undefined) {
    await vipmeshRun(Number(values.vips));
    return;
  }
  const r = new Map<string, { median: number; p99: number }>();
  if (values.only === undefined || values.only === 'keepalived') {
    r.set('kv3', await keepalivedRun('keepalived 2.2 VRRPv3 advert_int 0.1', { version: 3, advertInt: 0.1 }));
    r.set(
      'kv2',
      await keepalivedRun('keepalived 2.2 VRRPv2 defaults (advert_int 1)', { version: 2, advertInt: 1 }),
    );
  }
  if (values.only === undefined || values.only === 'vipmesh') {
    r.set('vm1', await vipmeshRun(1));
    r.set('vm100', await vipmeshRun(100));
    await footprintRows();
  }
  if (values.only === undefined || values.only === 'handover') {
    const sigterm = await handoverRun(ROUNDS, [], 'vipmesh planned hand-over (SIGTERM, make-before-break)');
    await handoverRun(
      Math.min(ROUNDS, 3),
      ['--handover-timeout', '0'],
      'vipmesh SIGTERM with --handover-timeout 0 (for comparison)',
    );
    const drain = await handoverRun(
      ROUNDS,
      [],
      'vipmesh drain of the holder (its agent keeps running)',
      'drain',
    );
    const server = await handoverRun(
      Math.min(ROUNDS, 5),
      [],
      'vipmesh server SIGTERMed while its local agent holds the VIP (make-before-break)',
      'server',
    );
    console.log('hand-over goal: client gap <= 20 ms, 0 failed connections');
    for (const [what, h] of [
      ["SIGTERM of the holder's agent", sigterm],
      ['vipmesh drain of the holder', drain],
      ['SIGTERM of the server holding the VIP', server],
    ] as const) {
      recordGoal({
        row: `planned hand-over, ${what}: longest client gap median / max, failed connections`,
        now: `${h.gapMedian.toFixed(1)} / ${h.gapMax.toFixed(1)} ms, ${h.failed} failed in ${h.rounds} rounds`,
        goal: '<= 20 ms, 0 failed',
        met: h.gapMax <= 20 && h.failed === 0,
      });
    }
  }
  const ratio = (a: string, b: string, k: 'median' | 'p99') => {
    const x = r.get(a);
    const y = r.get(b);
    if (x && y) console.log(`ratio ${a}/${b} ${k}: ${(x[k] / y[k]).toFixed(2)}`);
  };
  for (const k of ['median', 'p99'] as const) {
    ratio('vm1', 'kv3', k);
    ratio('vm1', 'kv2', k);
    ratio('vm100', 'kv3', k);
  }
  if (values.only === undefined || values.only === 'vipmesh' || values.only === 'keepalived')
    console.log(
      'goals: vipmesh median <= 150 ms, p99 <= 250 ms (1 and 100 VIPs); 1 VIP <= 0.5x keepalived VRRPv3 advert_int 0.1',
    );
  recordFailoverGoals(r);
  if (values.only === undefined || values.only === 'vipmesh') await soakRun(2);
  console.log(`load average at end (1, 5, 15 min): ${loadText()}`);
}

await main();
