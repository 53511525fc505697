/**
 * A network-namespace lab for `vipmesh demo`, the root-only tests (test/netns) and the benchmarks.
 *
 * Every lab gets unique namespace names (`vmlab-<pid>-<rand>-<node>`), so parallel runs never collide, and
 * one "switch" namespace that holds the bridge: nothing is created in the caller's namespace. `destroy()`
 * kills what the lab started and deletes its namespaces; it also runs on process exit, and `sweepStale()`
 * removes namespaces left by runs whose process is gone. Only 198.51.100.0/24, 2001:db8::/64 and
 * 198.18.0.0/16 are used inside.
 */
import { type ChildProcess, execFile, execFileSync, type SpawnOptions, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const PREFIX = 'vmlab-';

/** True when the suite can build namespaces (root, with the `ip` tool). */
export function canUseNetns(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * The environment for a child: a node child that runs TypeScript through tsx is kept out of tap's coverage
 * (it would report the same sources through a second transform, and tap's merge then marks lines the unit
 * tests ran as uncovered). Children that run with tap's own loader keep reporting.
 */
export function childEnv(argv: readonly string[], env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const tsx = argv.some((a, i) => a === '--import=tsx' || (a === 'tsx' && argv[i - 1] === '--import'));
  return tsx ? { ...env, _TAPJS_PROCESSINFO_COVERAGE_: '0' } : env;
}

/** Result of a command run in a namespace. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Run `argv` in namespace `ns` (or the current one when `ns` is undefined); never throws on exit status. */
export async function nsExec(
  ns: string | undefined,
  argv: string[],
  timeoutMs = 30_000,
): Promise<ExecResult> {
  const [cmd, args] = ns === undefined ? [argv[0]!, argv.slice(1)] : ['ip', ['netns', 'exec', ns, ...argv]];
  const env = childEnv(argv, process.env);
  try {
    const { stdout, stderr } = await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20, env });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number | string };
    return {
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? String(err),
      code: typeof e.code === 'number' ? e.code : 1,
    };
  }
}

/** Like {@link nsExec} but throws with the command and its stderr when it fails. */
async function nsRun(ns: string | undefined, argv: string[], timeoutMs = 30_000): Promise<string> {
  const r = await nsExec(ns, argv, timeoutMs);
  if (r.code !== 0)
    throw new Error(`${ns ?? '(host)'}: ${argv.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** One node (or client) namespace of a lab: `eth0` inside, plugged into the lab's bridge. */
interface LabNode {
  name: string;
  ns: string;
  /** The interface inside the node (always `eth0`). */
  iface: string;
  /** The bridge-side end of the node's veth, in the switch namespace (cut it to "pull the cable"). */
  port: string;
  mac: string;
  ipv4?: string;
  ipv6?: string;
}

/** Options for {@link Lab.addNode}. */
interface NodeOptions {
  /** e.g. `198.51.100.11/24` */
  ipv4?: string;
  /** e.g. `2001:db8::11/64` (added with nodad) */
  ipv6?: string;
  /** Set a fixed MAC on eth0. */
  mac?: string;
}

const live = new Set<Lab>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const lab of live) lab.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const lab of live) lab.destroySync();
      process.kill(process.pid, sig);
    });
  }
}

/** A bridge in its own namespace plus node namespaces cabled to it. */
export class Lab {
  readonly id: string;
  readonly switchNs: string;
  readonly nodes = new Map<string, LabNode>();
  readonly #children = new Set<ChildProcess>();
  #destroyed = false;
  #cables: CableSwitch | undefined;

  private constructor(id: string) {
    this.id = id;
    this.switchNs = `${id}-sw`;
  }

  /** Build the switch namespace with bridge `br0` (STP off, no forwarding delay). */
  static async create(): Promise<Lab> {
    await sweepStale();
    const lab = new Lab(`${PREFIX}${process.pid}-${randomBytes(3).toString('hex')}`);
    live.add(lab);
    installExitHook();
    await nsRun(undefined, ['ip', 'netns', 'add', lab.switchNs]);
    await nsRun(lab.switchNs, ['ip', 'link', 'set', 'lo', 'up']);
    await nsRun(lab.switchNs, [
      'ip',
      'link',
      'add',
      'br0',
      'type',
      'bridge',
      'stp_state',
      '0',
      'forward_delay',
      '0',
    ]);
    await nsRun(lab.switchNs, ['ip', 'link', 'set', 'br0', 'up']);
    await lab.#cableSwitch().show('br0'); // started now, so the first cut does not wait for it
    return lab;
  }

  /** Add namespace `<id>-<name>` with `eth0` on the bridge, addresses configured, lo up, DAD off. */
  async addNode(name: string, opts: NodeOptions = {}): Promise<LabNode> {
    const ns = `${this.id}-${name}`;
    const port = `p-${name}`.slice(0, 15);
    await nsRun(undefined, ['ip', 'netns', 'add', ns]);
    for (const key of ['all', 'default']) {
      await nsRun(ns, ['sysctl', '-qw', `net.ipv6.conf.${key}.accept_dad=0`]);
    }
    await nsRun(ns, ['ip', 'link', 'set', 'lo', 'up']);
    await nsRun(this.switchNs, [
      'ip',
      'link',
      'add',
      port,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      ns,
    ]);
    await nsRun(this.switchNs, ['ip', 'link', 'set', port, 'master', 'br0', 'up']);
    if (opts.mac !== undefined) await nsRun(ns, ['ip', 'link', 'set', 'eth0', 'address', opts.mac]);
    await nsRun(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    if (opts.ipv4 !== undefined) await nsRun(ns, ['ip', 'addr', 'add', opts.ipv4, 'dev', 'eth0']);
    if (opts.ipv6 !== undefined)
      await nsRun(ns, ['ip', '-6', 'addr', 'add', opts.ipv6, 'dev', 'eth0', 'nodad']);
    const link = JSON.parse(await nsRun(ns, ['ip', '-j', 'link', 'show', 'eth0'])) as Array<{
      address: string;
    }>;
    const node: LabNode = { name, ns, iface: 'eth0', port, mac: link[0]!.address };
    if (opts.ipv4 !== undefined) node.ipv4 = opts.ipv4.split('/')[0]!;
    if (opts.ipv6 !== undefined) node.ipv6 = opts.ipv6.split('/')[0]!;
    this.nodes.set(name, node);
    return node;
  }

  node(name: string): LabNode {
    const n = this.nodes.get(name);
    if (n === undefined) throw new Error(`lab has no node ${name}`);
    return n;
  }

  /** Run a command inside node `name`'s namespace. */
  exec(name: string, argv: string[], timeoutMs?: number): Promise<ExecResult> {
    return nsExec(this.node(name).ns, argv, timeoutMs);
  }

  /** Run a command inside node `name`'s namespace; throw when it fails. */
  run(name: string, argv: string[], timeoutMs?: number): Promise<string> {
    return nsRun(this.node(name).ns, argv, timeoutMs);
  }

  /** Start a long-running process in node `name`'s namespace; it is killed by destroy(). */
  spawn(name: string, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.node(name).ns, ...argv], {
      stdio: 'pipe',
      ...opts,
      env: childEnv(argv, opts.env ?? process.env),
    });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /**
   * Pull node `name`'s cable: its bridge port goes down (the node's own eth0 stays up). The port goes down
   * within a fraction of a millisecond of the call (one `ip -batch` kept running in the switch namespace), so
   * a failover measured from the call starts at the cut, not at an `ip` process's start.
   */
  async cut(name: string): Promise<void> {
    await this.#cableSwitch().set(this.node(name).port, 'down');
  }

  /** Plug node `name`'s cable back in. */
  async restore(name: string): Promise<void> {
    await this.#cableSwitch().set(this.node(name).port, 'up');
  }

  #cableSwitch(): CableSwitch {
    if (this.#cables === undefined || this.#cables.dead) {
      const child = spawn('ip', ['netns', 'exec', this.switchNs, 'ip', '-o', '-force', '-batch', '-'], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      this.#children.add(child);
      child.once('exit', () => this.#children.delete(child));
      this.#cables = new CableSwitch(child);
    }
    return this.#cables;
  }

  /** Kill every process the lab started and delete its namespaces. Safe to call twice. */
  async destroy(): Promise<void> {
    this.destroySync();
  }

  /** Synchronous teardown, usable from an exit handler. */
  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    live.delete(this);
    for (const child of this.#children) child.kill('SIGKILL');
    for (const node of this.nodes.values()) killNamespace(node.ns);
    killNamespace(this.switchNs);
  }
}

/**
 * The switch's `ip -o -force -batch -`: each change is written to it followed by `link show` of the same
 * port, whose one line says it is done and what state the port is in.
 */
class CableSwitch {
  #out = '';
  #err = '';
  #exited = false;
  readonly #waiting: Array<(line: string | undefined) => void> = [];

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      this.#out += d;
      for (let nl = this.#out.indexOf('\n'); nl >= 0; nl = this.#out.indexOf('\n')) {
        const line = this.#out.slice(0, nl);
        this.#out = this.#out.slice(nl + 1);
        this.#waiting.shift()?.(line);
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      this.#err = (this.#err + d).slice(-2000);
    });
    child.stdin!.on('error', () => undefined); // an exit is reported below
    child.once('exit', () => {
      this.#exited = true;
      for (const w of this.#waiting.splice(0)) w(undefined);
    });
  }

  get dead(): boolean {
    return this.#exited;
  }

  async set(port: string, state: 'up' | 'down'): Promise<void> {
    const line = await this.show(port, `link set dev ${port} ${state}\n`);
    const flags = /<([^>]*)>/.exec(line)?.[1]?.split(',') ?? [];
    if (flags.includes('UP') !== (state === 'up')) {
      throw new Error(`lab switch: ${port} is not ${state} after the change: ${line} ${this.#err.trim()}`);
    }
  }

  /** `link show` of `port` (after `before`, when given): its one line. */
  async show(port: string, before = ''): Promise<string> {
    const line = await new Promise<string | undefined>((resolve) => {
      if (this.#exited) return resolve(undefined);
      // No line comes when `link show` itself fails (a port gone): then this switch is not to be trusted.
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      this.#waiting.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
      this.child.stdin!.write(`${before}link show dev ${port}\n`);
    });
    if (line === undefined) throw new Error(`lab switch: ip -batch exited: ${this.#err.trim()}`);
    return line;
  }
}

function killNamespace(ns: string): void {
  try {
    // Anything still running in the namespace (a daemon a test forgot) would keep its links alive.
    const pids = execFileSync('ip', ['netns', 'pids', ns], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    for (const pid of pids.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  } catch {
    // namespace already gone
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

/** Delete lab namespaces whose creating process no longer exists (left by a crashed run). */
async function sweepStale(): Promise<void> {
  const out = await nsExec(undefined, ['ip', 'netns', 'list']);
  for (const line of out.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = /^vmlab-(\d+)-/.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) killNamespace(name);
  }
}
