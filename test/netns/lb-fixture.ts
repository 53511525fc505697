/**
 * The load balancer lab: a VIP holder running the real `vipmesh agent`, a stand-in server in the holder's
 * namespace (test/lb-fixtures/server.ts) that pushes the VIPs and Services the test gives it and records
 * the health reports, backends on the LAN, a "pod" namespace behind the holder (198.18.1.0/24), and a
 * client. Reusable: `push()` takes any `vipmesh/vips` / `vipmesh/services` payload.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type {
  HealthReport,
  LbService,
  TOPIC_SERVICES,
  TOPIC_VIPS,
  VipAssignment,
} from '../../src/api/agent-protocol.js';
import { until } from '../../src/testing/until.js';
import { ClusterLab } from './cluster-fixture.js';

const ROOT = join(import.meta.dirname, '..', '..');
const TSX = [process.execPath, '--import', 'tsx'];

export const HOLDER = { ipv4: '198.51.100.2', ipv6: '2001:db8::2' };
export const CLIENT = { ipv4: '198.51.100.50', ipv6: '2001:db8::50' };
/** Backends on the LAN. */
export const BACKENDS = {
  b1: { ipv4: '198.51.100.21', ipv6: '2001:db8::21' },
  b2: { ipv4: '198.51.100.22', ipv6: '2001:db8::22' },
  b3: { ipv4: '198.51.100.23', ipv6: '2001:db8::23' },
};
/** The backend in a pod subnet of the holder (an endpoint local to it). */
export const POD = { ipv4: '198.18.1.2', gateway: '198.18.1.1' };

/** JSON event lines of a child, and a way to wait for one that matches. */
function events(child: ChildProcess) {
  const seen: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      seen.push(JSON.parse(line));
    } catch {
      // not an event line
    }
  });
  return {
    seen,
    find: (pred: (e: Record<string, unknown>) => boolean, what: string, timeoutMs = 20_000) =>
      until(what, () => seen.find(pred), { timeoutMs }),
  };
}

export class LbLab {
  readonly c: ClusterLab;
  #server: { proc: ChildProcess; events: ReturnType<typeof events> } | undefined;
  readonly backends = new Map<string, ChildProcess>();
  token = '';
  /** What the backends printed on stderr (for failure messages). */
  stderr = '';

  private constructor(c: ClusterLab) {
    this.c = c;
  }

  static async create(): Promise<LbLab> {
    const c = await ClusterLab.create({
      holder: HOLDER,
      client: CLIENT,
      ...BACKENDS,
    });
    const l = new LbLab(c);
    const lab = c.lab;
    // The pod: a namespace cabled to the holder only (its bridge port stays down).
    await lab.addNode('pod');
    await lab.cut('pod');
    await lab.run('holder', [
      'ip',
      'link',
      'add',
      'pod0',
      'type',
      'veth',
      'peer',
      'name',
      'eth1',
      'netns',
      lab.node('pod').ns,
    ]);
    await lab.run('holder', ['ip', 'addr', 'add', `${POD.gateway}/24`, 'dev', 'pod0']);
    await lab.run('holder', ['ip', 'link', 'set', 'pod0', 'up']);
    await lab.run('pod', ['ip', 'addr', 'add', `${POD.ipv4}/24`, 'dev', 'eth1']);
    await lab.run('pod', ['ip', 'link', 'set', 'eth1', 'up']);
    await lab.run('pod', ['ip', 'route', 'add', 'default', 'via', POD.gateway]);
    // host-gw turns forwarding on in a cluster; this lab runs no host-gw.
    await lab.run('holder', ['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    return l;
  }

  /** Start the stand-in server in the holder's namespace (127.0.0.1:6443). */
  async startServer(): Promise<void> {
    const proc = this.c.lab.spawn('holder', [
      ...TSX,
      join(ROOT, 'test', 'lb-fixtures', 'server.ts'),
      '--data-dir',
      join(this.c.dir, 'server'),
    ]);
    const ev = events(proc);
    this.#server = { proc, events: ev };
    const l = await ev.find((e) => e['event'] === 'listening', 'the stand-in server');
    this.token = String(l['token']);
  }

  /** Start `vipmesh agent` on the holder. */
  async startAgent(): Promise<void> {
    await this.c.start(
      'holder',
      this.c.agentArgs('holder', HOLDER.ipv4, ['https://127.0.0.1:6443'], this.token, [
        '--node-ip',
        HOLDER.ipv6,
      ]),
      /vipmesh agent is up/,
    );
  }

  /** Stop the agent (SIGTERM); resolves to its exit code. */
  stopAgent(): Promise<number | null> {
    return this.c.stop('holder');
  }

  push(topic: typeof TOPIC_VIPS, payload: { vips: VipAssignment[] }): void;
  push(topic: typeof TOPIC_SERVICES, payload: { services: LbService[] }): void;
  push(topic: string, payload: unknown): void {
    this.#server!.proc.stdin!.write(`${JSON.stringify({ topic, payload })}\n`);
  }

  /** The health reports the server received, oldest first. */
  get reports(): HealthReport[] {
    return (this.#server?.events.seen ?? [])
      .filter((e) => e['event'] === 'health')
      .map((e) => e['report'] as HealthReport);
  }

  /** Wait for a report that satisfies `pred`. */
  report(pred: (r: HealthReport) => boolean, what: string, timeoutMs = 20_000): Promise<HealthReport> {
    return until(what, () => this.reports.find(pred), { timeoutMs });
  }

  /** Start a backend in `node` (test/lb-fixtures/backend.ts) and wait until it listens. */
  async startBackend(node: string, args: string[]): Promise<ChildProcess> {
    const proc = this.c.lab.spawn(node, [
      ...TSX,
      join(ROOT, 'test', 'lb-fixtures', 'backend.ts'),
      '--name',
      node,
      ...args,
    ]);
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (this.stderr += `${node}: ${d.toString()}`));
    proc.once('exit', (code, sig) => (this.stderr += `${node} exited ${code} ${sig}\n`));
    await until(`backend ${node}`, () => out.includes('ready'));
    this.backends.set(node, proc);
    return proc;
  }

  /** Kill a backend and wait for it to be gone. */
  async killBackend(node: string): Promise<void> {
    const p = this.backends.get(node);
    if (p === undefined) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
    this.backends.delete(node);
  }

  /** One HTTP request from the client; the body, or undefined when it failed. */
  async curl(url: string, extra: string[] = []): Promise<string | undefined> {
    const r = await this.c.lab.exec('client', ['curl', '-sS', '--max-time', '3', ...extra, url]);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  /** `nft list table inet vipmesh` on the holder; undefined when there is no such table. */
  async table(): Promise<string | undefined> {
    const r = await this.c.lab.exec('holder', ['nft', 'list', 'table', 'inet', 'vipmesh']);
    return r.code === 0 ? r.stdout : undefined;
  }

  async destroy(): Promise<void> {
    this.#server?.proc.kill('SIGKILL');
    await this.c.destroy();
  }
}
