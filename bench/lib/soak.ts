/**
 * The soak of bench/failover.ts: a server and two agents holding VIPs run for a while with both cores
 * saturated (`stress-ng --cpu 2`) and the agents' heaps churned (VIPMESH_DEBUG_HEAP_CHURN), while no node
 * dies; every VIP holder change, Node NotReady and lost tunnel session in that time is a false failover.
 * The goal is 0 in 10 minutes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { HEAP_CHURN_ENV } from '../../src/daemon/heap-churn.js';
import { LabCluster } from '../../src/lab/cluster.js';
import { Lab } from '../../src/lab/index.js';
import { recordGoal } from './goals.js';

/** What a soak is given. */
export interface SoakOptions {
  minutes: number;
  /** Megabytes of garbage per second in each agent. */
  churnMbPerSecond: number;
  /** Address pools (YAML) and the Services (YAML) whose VIPs the agents hold. */
  pools: string;
  services: string;
  /** How many VIPs `services` makes. */
  vips: number;
  /** Flags for the server and the agents (e.g. `--heartbeat-interval 50ms`) [none]. */
  daemonArgs?: string[];
}

/** What a soak counted. */
export interface SoakResult {
  /** VIP holder changes seen between polls (every 2 s: each poll starts a CLI process, which loads the machine). */
  holderChanges: number;
  /** `node NotReady` lines logged by the server, with their reasons. */
  notReady: string[];
  /** `tunnel session lost` lines logged by the agents, with their reasons. */
  sessionsLost: string[];
  /** Seconds the soak ran. */
  seconds: number;
  /** 1-minute load averages sampled every 10 s. */
  load: number[];
  /**
   * The longest liveness silence each daemon judged and then heard the end of, in ms
   * (`vipmesh_tunnel_liveness_longest_silence_seconds`), and how many silences went over half the bound:
   * how near the soak came to a false failover. Undefined where the metrics could not be read.
   */
  silences:
    | Array<{
        node: string;
        role: string;
        longestMs: number;
        longSilences: number;
        /** The daemon's liveness thread: its longest late wake-up and busy span (ms), its major page faults. */
        lateWakeMs: number;
        busyMs: number;
        threadMajorFaults: number;
      }>
    | undefined;
  /**
   * Major page faults on the whole machine during the soak (/proc/vmstat `pgmajfault`): pages read back
   * from disk, file pages of code the kernel had dropped among them. A stall every daemon hears at once
   * is the machine's, and this is one of its candidates.
   */
  majorFaults: number;
  /**
   * Time during the soak in which every runnable task on the machine waited for I/O, and for memory
   * (pressure stall information, the `full` totals of /proc/pressure/io and /memory), ms; undefined
   * where the kernel has no PSI.
   */
  stalledMs: { io: number; memory: number } | undefined;
  /**
   * The most time a `ksoftirqd` thread (which runs the packet path at normal priority when softirq work
   * is deferred to it) waited to run within one sample of about 20 ms, and that sample's length, ms;
   * undefined without schedstats.
   */
  softirqWait: { waitMs: number; sampleMs: number } | undefined;
  /**
   * The longest a SCHED_FIFO 99 thread on each CPU (`cyclictest`, 1 ms timer) woke late, in ms: nothing in
   * the machine but interrupts outranks it, so a long one is the host not running that CPU (a VM's vCPU)
   * or the kernel's own interrupt work; undefined without `cyclictest` (Debian's rt-tests).
   */
  timerLatencyMs: number[] | undefined;
}

/** Run `cyclictest` for `seconds` (one SCHED_FIFO 99 thread per CPU); resolves with each thread's maximum, ms. */
function cyclictest(seconds: number): {
  done: Promise<number[] | undefined>;
  child: ChildProcess | undefined;
} {
  let child: ChildProcess;
  try {
    child = spawn('cyclictest', ['-m', '-S', '-p', '99', '-i', '1000', '-q', '-D', String(seconds)], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return { done: Promise.resolve(undefined), child: undefined };
  }
  let out = '';
  child.stdout?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const done = new Promise<number[] | undefined>((resolve) => {
    child.once('error', () => resolve(undefined));
    child.once('close', () => {
      const max = [...out.matchAll(/Max:\s+(\d+)/g)].map((m) => Number(m[1]) / 1000);
      resolve(max.length === 0 ? undefined : max);
    });
  });
  return { done, child };
}

/** Samples the run-queue wait of the ksoftirqd threads (/proc/PID/schedstat, 2nd field) every 20 ms. */
class SoftirqSampler {
  readonly #pids: string[];
  #last = new Map<string, number>();
  #at = performance.now();
  #worst: { waitMs: number; sampleMs: number } = { waitMs: 0, sampleMs: 0 };
  readonly #timer: NodeJS.Timeout;

  constructor() {
    const pids: string[] = [];
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('ksoftirqd/')) pids.push(pid);
      } catch {
        // gone
      }
    }
    this.#pids = pids;
    this.#read();
    this.#timer = setInterval(() => this.#read(), 20);
  }

  #read(): void {
    const now = performance.now();
    for (const pid of this.#pids) {
      let wait: number;
      try {
        wait = Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e6;
      } catch {
        continue;
      }
      const before = this.#last.get(pid);
      if (before !== undefined && wait - before > this.#worst.waitMs)
        this.#worst = { waitMs: wait - before, sampleMs: now - this.#at };
      this.#last.set(pid, wait);
    }
    this.#at = now;
  }

  stop(): SoakResult['softirqWait'] {
    clearInterval(this.#timer);
    return this.#pids.length === 0 || this.#last.size === 0 ? undefined : this.#worst;
  }
}

/** The `full` stall totals of /proc/pressure/io and /proc/pressure/memory, in us; undefined without PSI. */
function fullStalls(): { io: number; memory: number } | undefined {
  try {
    const full = (what: string) =>
      Number(
        /^full .* total=(\d+)$/m.exec(readFileSync(`/proc/pressure/${what}`, 'utf8'))?.[1] ?? Number.NaN,
      );
    return { io: full('io'), memory: full('memory') };
  } catch {
    return undefined;
  }
}

/** The machine's major page faults since boot. */
function majorFaults(): number {
  return Number(/^pgmajfault (\d+)$/m.exec(readFileSync('/proc/vmstat', 'utf8'))?.[1] ?? Number.NaN);
}

/** The liveness margin figures of the daemons on `nodes`, from their metrics endpoints. */
async function silences(lab: Lab, nodes: string[]): Promise<SoakResult['silences']> {
  const out: NonNullable<SoakResult['silences']> = [];
  for (const node of nodes) {
    const r = await lab.exec(node, ['curl', '-sf', 'http://127.0.0.1:7472/metrics'], 10_000);
    if (r.code !== 0) return undefined;
    for (const role of ['server', 'agent']) {
      const pick = (name: string) =>
        Number(new RegExp(`^${name}\\{role="${role}"\\} (\\S+)$`, 'm').exec(r.stdout)?.[1] ?? Number.NaN);
      const longest = pick('vipmesh_tunnel_liveness_longest_silence_seconds');
      const long = pick('vipmesh_tunnel_liveness_long_silences_total');
      // A side with no hub (the server's own agent, an agent on the server's node) reports 0 for both.
      if (longest > 0)
        out.push({
          node,
          role,
          longestMs: longest * 1000,
          longSilences: long,
          lateWakeMs: pick('vipmesh_tunnel_liveness_thread_late_wake_seconds') * 1000,
          busyMs: pick('vipmesh_tunnel_liveness_thread_busy_seconds') * 1000,
          threadMajorFaults: pick('vipmesh_tunnel_liveness_thread_major_faults_total'),
        });
    }
  }
  return out;
}

interface NodeList {
  items: Array<{
    metadata: { name: string };
    status?: { vips?: string[]; conditions?: Array<{ type: string; lastTransitionTime?: string }> };
  }>;
}

/** Count the JSON log lines of `child` whose `msg` is one of `msgs` (each line's `reason` is kept). */
function countLines(child: ChildProcess, msgs: string[], out: Map<string, string[]>): void {
  let rest = '';
  const onData = (b: Buffer): void => {
    const lines = (rest + b.toString()).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        const rec = JSON.parse(line) as { msg?: string; reason?: string };
        if (rec.msg !== undefined && msgs.includes(rec.msg)) {
          out.get(rec.msg)?.push(rec.reason ?? '');
        }
      } catch {
        // not a log record
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
}

async function holders(cluster: LabCluster): Promise<Map<string, string> | undefined> {
  const r = await cluster.vipmesh(['get', 'nodes', '-o', 'json']);
  if (r.code !== 0) return undefined;
  const m = new Map<string, string>();
  for (const n of (JSON.parse(r.stdout) as NodeList).items) {
    for (const v of n.status?.vips ?? []) m.set(v, n.metadata.name);
  }
  return m;
}

/** Run the soak; the cluster is made and destroyed here. */
export async function soak(o: SoakOptions): Promise<SoakResult> {
  const lab = await Lab.create();
  await lab.addNode('s1', { ipv4: '198.51.100.10/24' });
  await lab.addNode('n1', { ipv4: '198.51.100.11/24' });
  await lab.addNode('n2', { ipv4: '198.51.100.12/24' });
  const before = process.env[HEAP_CHURN_ENV];
  // The cluster hands its environment to every daemon it starts (the server does not read this one).
  process.env[HEAP_CHURN_ENV] = String(o.churnMbPerSecond);
  const cluster = new LabCluster(lab, 's1', '198.51.100.10');
  if (before === undefined) delete process.env[HEAP_CHURN_ENV];
  else process.env[HEAP_CHURN_ENV] = before;
  let stress: ChildProcess | undefined;
  let softirq: SoftirqSampler | undefined;
  let timer: ReturnType<typeof cyclictest> | undefined;
  try {
    await cluster.startServer(o.daemonArgs ?? []);
    const seen = new Map<string, string[]>([
      ['node NotReady', []],
      ['tunnel session lost', []],
    ]);
    countLines(cluster.daemons.get('s1')!.child, ['node NotReady'], seen);
    for (const [n, ip] of [
      ['n1', '198.51.100.11'],
      ['n2', '198.51.100.12'],
    ] as const) {
      countLines(cluster.startAgent(n, ip, o.daemonArgs ?? []).child, ['tunnel session lost'], seen);
    }
    await cluster.waitReady(['n1', 'n2']);
    const file = join(cluster.dir, 'soak.yaml');
    writeFileSync(file, `${o.pools}---\n${o.services}`);
    await cluster.apply(file);
    let start = await cluster.until(
      `${o.vips} VIPs held`,
      async () => {
        const h = await holders(cluster);
        return h !== undefined && h.size >= o.vips ? h : undefined;
      },
      120_000,
    );
    const spread = new Set(start.values());
    console.log(`soak: ${o.vips} VIPs on ${[...spread].sort().join(', ')}; stress-ng --cpu 2 starts now`);
    stress = spawn('stress-ng', ['--cpu', '2', '--timeout', `${Math.ceil(o.minutes * 60) + 30}s`], {
      stdio: 'ignore',
    });
    for (const v of seen.values()) v.length = 0; // count from here only
    const t0 = performance.now();
    const faults0 = majorFaults();
    const stalls0 = fullStalls();
    softirq = new SoftirqSampler();
    timer = cyclictest(Math.ceil(o.minutes * 60));
    const endAt = t0 + o.minutes * 60_000;
    let holderChanges = 0;
    const load: number[] = [];
    let nextLoad = t0 + 10_000;
    while (performance.now() < endAt) {
      await new Promise((r) => setTimeout(r, 2000));
      const h = await holders(cluster);
      if (h !== undefined) {
        for (const [vip, node] of h) {
          if (start.get(vip) !== node) holderChanges++;
        }
        start = h;
      }
      if (performance.now() >= nextLoad) {
        load.push(loadavg()[0]!);
        nextLoad += 10_000;
      }
    }
    const softirqWait = softirq.stop();
    // It ends on its own at the soak's length; one that outlives the loop is stopped (it prints on SIGINT).
    timer.child?.kill('SIGINT');
    const timerLatencyMs = await timer.done;
    return {
      softirqWait,
      timerLatencyMs,
      silences: await silences(lab, ['s1', 'n1', 'n2']),
      majorFaults: majorFaults() - faults0,
      stalledMs: ((end) =>
        end === undefined || stalls0 === undefined
          ? undefined
          : { io: (end.io - stalls0.io) / 1000, memory: (end.memory - stalls0.memory) / 1000 })(fullStalls()),
      holderChanges,
      notReady: seen.get('node NotReady')!,
      sessionsLost: seen.get('tunnel session lost')!,
      seconds: (performance.now() - t0) / 1000,
      load,
    };
  } finally {
    softirq?.stop();
    timer?.child?.kill('SIGTERM');
    stress?.kill('SIGTERM');
    await lab.destroy();
    cluster.cleanup();
  }
}

/** Print a soak's figures. */
export function reportSoak(r: SoakResult, o: SoakOptions): void {
  const false_ = r.holderChanges + r.notReady.length;
  const l = r.load.length === 0 ? [loadavg()[0]!] : r.load;
  const mean = l.reduce((a, b) => a + b, 0) / l.length;
  console.log(
    `soak: ${false_} false failovers (${r.holderChanges} VIP holder changes, ${r.notReady.length} NotReady) and ` +
      `${r.sessionsLost.length} lost tunnel sessions in ${(r.seconds / 60).toFixed(1)} min, ${o.vips} VIPs on 2 agents, ` +
      `stress-ng --cpu 2, ${HEAP_CHURN_ENV}=${o.churnMbPerSecond}${o.daemonArgs?.length ? `, ${o.daemonArgs.join(' ')}` : ''}; load average (1 min) mean ${mean.toFixed(1)}, ` +
      `max ${Math.max(...l).toFixed(1)}; goal 0 in 10 min`,
  );
  recordGoal({
    row: `false failovers in a soak, both cores saturated, heaps churned (${(r.seconds / 60).toFixed(0)} min)`,
    now: `${false_} false failovers, ${r.sessionsLost.length} lost sessions (load mean ${mean.toFixed(1)}, max ${Math.max(...l).toFixed(1)})`,
    goal: '0 in 10 min',
    met: false_ === 0,
  });
  if (r.silences === undefined) console.log("soak: the daemons' liveness metrics could not be read");
  for (const x of r.silences ?? [])
    console.log(
      `  liveness margin, ${x.node} (${x.role}): longest silence heard the end of ${x.longestMs.toFixed(1)} ms; ` +
        `${x.longSilences} silences over half the bound; its liveness thread woke at most ${x.lateWakeMs.toFixed(1)} ms late, ` +
        `was busy at most ${x.busyMs.toFixed(1)} ms, took ${x.threadMajorFaults} major page faults`,
    );
  console.log(
    `  the machine during the soak: ${r.majorFaults} major page faults` +
      (r.stalledMs === undefined
        ? ''
        : `; every task stalled on I/O ${r.stalledMs.io.toFixed(0)} ms, on memory ${r.stalledMs.memory.toFixed(0)} ms (PSI full)`) +
      (r.softirqWait === undefined
        ? ''
        : `; a ksoftirqd thread waited to run at most ${r.softirqWait.waitMs.toFixed(1)} ms in one sample of ${r.softirqWait.sampleMs.toFixed(1)} ms`) +
      (r.timerLatencyMs === undefined
        ? '; cyclictest not run (install rt-tests)'
        : `; a SCHED_FIFO 99 thread (cyclictest) woke at most ${r.timerLatencyMs.map((ms) => ms.toFixed(1)).join(' / ')} ms late (per CPU)`),
  );
  printReasons('session lost', r.sessionsLost);
  printReasons('NotReady', r.notReady);
}

/** Print `reasons` grouped by kind ("nothing heard for 321 ms" and "... 395 ms" are one kind). */
function printReasons(what: string, reasons: string[]): void {
  const kinds = new Map<string, number[]>();
  for (const reason of reasons) {
    const ms = /(\d+) ms/.exec(reason);
    const kind = reason.replace(/\d+ ms/g, 'N ms');
    kinds.set(kind, [...(kinds.get(kind) ?? []), ...(ms === null ? [] : [Number(ms[1])])]);
  }
  for (const [kind, ms] of kinds) {
    const n = reasons.filter((x) => x.replace(/\d+ ms/g, 'N ms') === kind).length;
    const range = ms.length === 0 ? '' : `, N ${Math.min(...ms)}-${Math.max(...ms)}`;
    console.log(`  ${what} x${n}: ${kind}${range}`);
  }
}
