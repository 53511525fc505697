/**
 * A vipmesh cluster in a lab: `vipmesh server --disable-agent` (or with its local agent) in one namespace
 * and `vipmesh agent` in others, driven through the real CLI (`vipmesh get/apply` inside the server's
 * namespace, with the admin config the server writes). Used by `vipmesh demo` and bench/failover.ts.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VipmeshError } from '../errors.js';
import type { ExecResult, Lab } from './index.js';
import { vipmeshCli } from './scripts.js';

/** The daemons' recent output, added to failures. */
type Logs = Map<string, string>;

/** One daemon the cluster started. */
interface LabDaemon {
  node: string;
  child: ChildProcess;
  /** When it was spawned (epoch ms). */
  startedAt: number;
}

/** A server and its agents in a lab. */
export class LabCluster {
  readonly lab: Lab;
  readonly server: string;
  readonly serverIp: string;
  readonly dir: string;
  readonly adminConfig: string;
  readonly daemons = new Map<string, LabDaemon>();
  readonly #logs: Logs = new Map();
  readonly #cli = vipmeshCli();
  readonly #env: NodeJS.ProcessEnv;
  #token = '';

  constructor(lab: Lab, server: string, serverIp: string, logLevel = 'warn') {
    this.lab = lab;
    this.server = server;
    this.serverIp = serverIp;
    this.dir = mkdtempSync(join(tmpdir(), 'vipmesh-lab-cluster-'));
    this.adminConfig = join(this.dir, server, 'vipmesh.yaml');
    // The daemons must not read the host's /etc/vipmesh/config.yaml: give them an empty one.
    const emptyConfig = join(this.dir, 'config.yaml');
    writeFileSync(emptyConfig, '');
    this.#env = { ...process.env, VIPMESH_CONFIG: emptyConfig, VIPMESH_LOG_LEVEL: logLevel };
  }

  /** The last output of every daemon, for error messages. */
  logs(): string {
    return [...this.#logs].map(([n, l]) => `--- ${n}:\n${l}`).join('\n');
  }

  #spawn(node: string, args: string[]): LabDaemon {
    const child = this.lab.spawn(node, [...this.#cli, ...args], { env: this.#env });
    const append = (b: Buffer): void => {
      this.#logs.set(node, ((this.#logs.get(node) ?? '') + b.toString()).slice(-6000));
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    const d = { node, child, startedAt: Date.now() };
    this.daemons.set(node, d);
    return d;
  }

  /** Run a vipmesh CLI command inside the server's namespace with the admin config (killed after `timeoutMs`). */
  vipmesh(args: string[], timeoutMs = 60_000): Promise<ExecResult> {
    return this.lab.exec(this.server, [...this.#cli, ...args, '--admin-config', this.adminConfig], timeoutMs);
  }

  /**
   * Start the server and wait until its API answers `vipmesh get nodes`; resolves to ms from spawn to that.
   * With `localAgent` the server runs its local agent, so its node holds VIPs too.
   */
  async startServer(extra: string[] = [], opts: { localAgent?: boolean } = {}): Promise<number> {
    const dir = join(this.dir, this.server);
    const d = this.#spawn(this.server, [
      'server',
      '--data-dir',
      dir,
      '--node-name',
      this.server,
      '--node-ip',
      this.serverIp,
      ...(opts.localAgent === true
        ? ['--state-dir', join(dir, 'run'), '--flannel-subnet-env', join(dir, 'subnet.env')]
        : ['--disable-agent']),
      '--cluster-cidr',
      '198.18.0.0/16',
      '--admin-config',
      this.adminConfig,
      ...extra,
    ]);
    await this.until('the server API', async () =>
      (await this.vipmesh(['get', 'nodes'])).code === 0 ? true : undefined,
    );
    const elapsed = Date.now() - d.startedAt;
    this.#token = readFileSync(join(this.dir, this.server, 'server', 'token'), 'utf8').trim();
    return elapsed;
  }

  /**
   * Start the server with its local agent and apply `file` while its node is the only one, so that node holds
   * the file's VIPs (placement is sticky when agents join after).
   */
  async startServerHolding(file: string): Promise<void> {
    await this.startServer([], { localAgent: true });
    await this.waitReady([this.server]);
    await this.apply(file);
  }

  /** The join token. */
  get token(): string {
    return this.#token;
  }

  /** Start an agent on `node` (its IP `ip`). */
  startAgent(node: string, ip: string, extra: string[] = []): LabDaemon {
    const dir = join(this.dir, node);
    return this.#spawn(node, [
      'agent',
      '--server',
      `https://${this.serverIp}:6443`,
      '--token',
      this.#token,
      '--node-name',
      node,
      '--node-ip',
      ip,
      '--data-dir',
      dir,
      '--state-dir',
      join(dir, 'run'),
      '--flannel-subnet-env',
      join(dir, 'subnet.env'),
      ...extra,
    ]);
  }

  /**
   * Send the daemon on `node` a signal (SIGTERM: what `systemctl stop` does) and resolve with its exit
   * code once it has exited (`ip netns exec` execs the daemon, so the signal reaches it).
   */
  stop(node: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const d = this.daemons.get(node);
    if (d === undefined) throw new Error(`no daemon on ${node}`);
    const { child } = d;
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill(signal);
    return exited;
  }

  /** Names of the nodes whose Ready condition is True. */
  async readyNodes(): Promise<string[]> {
    const r = await this.vipmesh(['get', 'nodes', '-o', 'json']);
    if (r.code !== 0) return [];
    const list = JSON.parse(r.stdout) as {
      items: Array<{
        metadata: { name: string };
        status?: { conditions?: Array<{ type: string; status: string }> };
      }>;
    };
    return list.items
      .filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
      .map((n) => n.metadata.name);
  }

  /** Wait until every node in `nodes` is Ready. */
  async waitReady(nodes: string[]): Promise<void> {
    await this.until(`${nodes.join(', ')} Ready`, async () => {
      const ready = await this.readyNodes();
      return nodes.every((n) => ready.includes(n)) ? true : undefined;
    });
  }

  /** `vipmesh apply -f <path>`; throws with the output when it fails. */
  async apply(path: string, timeoutMs = 60_000): Promise<string[]> {
    const r = await this.vipmesh(['apply', '-f', path], timeoutMs);
    if (r.code !== 0) throw new VipmeshError('VIPMESH_DEMO_FAILED', `apply -f ${path} failed: ${r.stderr}`);
    return r.stdout.trim().split('\n');
  }

  /** Peak resident set size (VmHWM) of the daemon on `node`, in MiB. */
  peakRssMiB(node: string): number {
    return statusField(node, this.daemons.get(node)?.child.pid, 'VmHWM');
  }

  /**
   * The two parts of the current RSS of the daemon on `node`, in MiB: anonymous memory (heaps, stacks;
   * its own) and file pages (mostly the node binary's code, shared with every node process on the host).
   */
  rssSplitMiB(node: string): { anon: number; file: number } {
    const pid = this.daemons.get(node)?.child.pid;
    return { anon: statusField(node, pid, 'RssAnon'), file: statusField(node, pid, 'RssFile') };
  }

  /** Current resident set size (VmRSS) of the daemon on `node`, in MiB. */
  rssMiB(node: string): number {
    return statusField(node, this.daemons.get(node)?.child.pid, 'VmRSS');
  }

  /** Poll `fn` every 200 ms until it returns a value; fail after `timeoutMs` with the daemons' output. */
  async until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v !== undefined) return v;
      if (Date.now() > deadline) {
        throw new VipmeshError('VIPMESH_DEMO_FAILED', `timed out waiting for ${what}\n${this.logs()}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Remove the cluster's files (the lab itself is destroyed by its owner). */
  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function statusField(node: string, pid: number | undefined, field: string): number {
  if (pid === undefined) throw new Error(`no daemon on ${node}`);
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no ${field} for pid ${pid}`);
  return Number(m[1]) / 1024;
}
