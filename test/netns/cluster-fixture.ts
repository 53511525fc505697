/**
 * The end-to-end cluster lab: real `vipmesh server` / `vipmesh agent` processes in network namespaces on
 * one bridge, a client namespace, and helpers that talk to the API with curl from inside the server's
 * namespace (the test process is in the host namespace and never touches its network).
 */
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until as pollUntil } from '../../src/testing/until.js';
import { joinHostPort } from '../../src/util/host-port.js';
import { Lab } from './lab.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = [process.execPath, '--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts')];

/** A daemon started in the lab, with its output kept for failure messages. */
export interface Daemon {
  name: string;
  proc: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** The lab plus the cluster's processes. */
export class ClusterLab {
  readonly lab: Lab;
  readonly dir: string;
  readonly daemons = new Map<string, Daemon>();
  readonly emptyConfig: string;

  private constructor(lab: Lab) {
    this.lab = lab;
    this.dir = mkdtempSync(join(tmpdir(), 'vipmesh-cluster-'));
    this.emptyConfig = join(this.dir, 'config.yaml');
    writeFileSync(this.emptyConfig, '');
  }

  static async create(nodes: Record<string, { ipv4: string; ipv6?: string }>): Promise<ClusterLab> {
    const lab = await Lab.create();
    const c = new ClusterLab(lab);
    for (const [name, n] of Object.entries(nodes)) {
      await lab.addNode(name, {
        ipv4: `${n.ipv4}/24`,
        ...(n.ipv6 === undefined ? {} : { ipv6: `${n.ipv6}/64` }),
      });
    }
    return c;
  }

  /** Data dir of a node (persists across restarts of its daemon). */
  dataDir(node: string): string {
    return join(this.dir, node);
  }

  /** Start `vipmesh <args>` in node's namespace; resolves once `readyLine` appears in its log. */
  async start(node: string, args: string[], readyLine: RegExp, timeoutMs = 30_000): Promise<Daemon> {
    const old = this.daemons.get(node);
    if (old !== undefined && old.proc.exitCode === null && old.proc.signalCode === null) {
      throw new Error(`${node} already runs a daemon`);
    }
    const proc = this.lab.spawn(node, [...CLI, ...args], {
      env: { ...process.env, VIPMESH_CONFIG: this.emptyConfig, VIPMESH_LOG_LEVEL: 'debug' },
    });
    let out = '';
    const logDir = process.env['VIPMESH_TEST_LOG_DIR'];
    const onData = (b: Buffer) => {
      if (logDir !== undefined) appendFileSync(join(logDir, `${node}.log`), b);
      out += b.toString();
      if (out.length > 4_000_000) out = out.slice(-2_000_000);
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const d: Daemon = { name: node, proc, output: () => out, exited };
    this.daemons.set(node, d);
    const deadline = Date.now() + timeoutMs;
    while (!readyLine.test(out)) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(
          `${node}: vipmesh exited (${proc.exitCode ?? proc.signalCode}):\n${out.slice(-4000)}`,
        );
      }
      if (Date.now() > deadline)
        throw new Error(`${node}: not ready within ${timeoutMs} ms:\n${out.slice(-4000)}`);
      await sleep(50);
    }
    return d;
  }

  /** SIGTERM (or another signal) a daemon and wait for it to exit. */
  async stop(node: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const d = this.daemons.get(node);
    if (d === undefined) return null;
    if (d.proc.exitCode === null && d.proc.signalCode === null) {
      // `ip netns exec` passes the signal on to the process it runs (it execs it).
      d.proc.kill(signal);
    }
    return d.exited;
  }

  /** Server flags for tests. */
  serverArgs(node: string, ipv4: string, extra: string[] = []): string[] {
    const d = this.dataDir(node);
    return [
      'server',
      '--data-dir',
      d,
      '--node-name',
      node,
      '--node-ip',
      ipv4,
      '--cluster-cidr',
      '198.18.0.0/16',
      '--admin-config',
      join(d, 'vipmesh.yaml'),
      '--flannel-subnet-env',
      join(d, 'subnet.env'),
      '--state-dir',
      join(d, 'run'),
      '--node-startup-grace',
      '5s',
      ...extra,
    ];
  }

  /** Agent flags for tests. */
  agentArgs(node: string, ipv4: string, servers: string[], token: string, extra: string[] = []): string[] {
    const d = this.dataDir(node);
    return [
      'agent',
      '--server',
      servers.join(','),
      '--token',
      token,
      '--node-name',
      node,
      '--node-ip',
      ipv4,
      '--data-dir',
      d,
      '--flannel-subnet-env',
      join(d, 'subnet.env'),
      '--state-dir',
      join(d, 'run'),
      ...extra,
    ];
  }

  token(server: string, kind: 'token' | 'admin-token'): string {
    return readFileSync(join(this.dataDir(server), 'server', kind), 'utf8').trim();
  }

  /** Call the API from inside `node` with curl: `{code, body}`. */
  async api(
    node: string,
    token: string,
    method: string,
    path: string,
    body?: unknown,
    url = 'https://127.0.0.1:6443',
  ): Promise<{ code: number; body: unknown }> {
    const argv = ['curl', '-sk', '--max-time', '5', '-o', '-', '-w', '\n%{http_code}', '-X', method];
    argv.push('-H', `Authorization: Bearer ${token}`);
    if (body !== undefined)
      argv.push('-H', 'Content-Type: application/json', '--data-binary', JSON.stringify(body));
    argv.push(`${url}${path}`);
    const r = await this.lab.exec(node, argv, 10_000);
    const i = r.stdout.lastIndexOf('\n');
    const code = Number(r.stdout.slice(i + 1));
    let parsed: unknown;
    try {
      parsed = JSON.parse(r.stdout.slice(0, i));
    } catch {
      parsed = r.stdout.slice(0, i);
    }
    return { code: Number.isFinite(code) ? code : 0, body: parsed };
  }

  /** `curl http://VIP:port/` from `node`: the answering node's name, or undefined. */
  async reach(node: string, vip: string, port: number, timeoutS = 1): Promise<string | undefined> {
    const r = await this.lab.exec(
      node,
      ['curl', '-s', '--max-time', String(timeoutS), `http://${joinHostPort(vip, port)}/`],
      10_000,
    );
    return r.code === 0 && r.stdout !== '' ? r.stdout.trim() : undefined;
  }

  /** One UDP round trip to VIP:port from `node`: the answering node's name, or undefined. */
  async reachUdp(node: string, vip: string, port: number): Promise<string | undefined> {
    const script = `const s=require('dgram').createSocket('${vip.includes(':') ? 'udp6' : 'udp4'}');s.on('message',m=>{process.stdout.write(String(m));process.exit(0)});setTimeout(()=>process.exit(1),800);s.send('who','${port}','${vip}')`;
    const r = await this.lab.exec(node, [process.execPath, '-e', script], 10_000);
    return r.code === 0 && r.stdout !== '' ? r.stdout.trim() : undefined;
  }

  /** Serve the node's name over TCP (HTTP) and UDP on every address, ports given. */
  serveName(node: string, tcpPorts: number[], udpPorts: number[]): ChildProcess {
    const script = [
      "const http=require('http'),dgram=require('dgram');",
      ...tcpPorts.map((p) => `http.createServer((q,s)=>s.end('${node}')).listen(${p},'::');`),
      ...udpPorts.map(
        (p) =>
          `const u${p}=dgram.createSocket({type:'udp6'});u${p}.on('message',(m,r)=>u${p}.send('${node}',r.port,r.address));u${p}.bind(${p},'::');`,
      ),
    ].join('');
    return this.lab.spawn(node, [process.execPath, '-e', script]);
  }

  /** `vipmesh <args>` run inside `node` (not a daemon): its exit code and output. */
  vipmesh(
    node: string,
    args: string[],
    timeoutMs = 60_000,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.lab.exec(node, [...CLI, ...args], timeoutMs);
  }

  /** True when the server on `node` reports itself master on its metrics port. */
  async isMaster(node: string): Promise<boolean> {
    const r = await this.lab.exec(
      node,
      ['curl', '-s', '--max-time', '1', 'http://127.0.0.1:7472/metrics'],
      5000,
    );
    return /^vipmesh_controlplane_master 1$/m.test(r.stdout);
  }

  /** The MAC that answers ARP for `ip` as `from` sees it (one request, one second), lowercase. */
  async arpMac(from: string, ip: string): Promise<string | undefined> {
    const r = await this.lab.exec(from, ['arping', '-c', '1', '-w', '1', '-I', 'eth0', ip], 5000);
    return /\[([0-9a-f:]{17})\]/i.exec(r.stdout)?.[1]?.toLowerCase();
  }

  /** etcdctl inside server `node` against its embedded member, over TLS with the member certificate. */
  etcdctl(node: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const tls = join(this.dataDir(node), 'server', 'tls', 'etcd');
    return this.lab.exec(
      node,
      [
        'etcdctl',
        '--endpoints=https://127.0.0.1:2379',
        `--cacert=${join(tls, 'ca.crt')}`,
        `--cert=${join(tls, 'member.crt')}`,
        `--key=${join(tls, 'member.key')}`,
        '--command-timeout=3s',
        ...args,
      ],
      10_000,
    );
  }

  async destroy(): Promise<void> {
    for (const name of this.daemons.keys()) await this.stop(name, 'SIGKILL').catch(() => undefined);
    await this.lab.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Poll `fn` until it returns something other than undefined/false, or throw after `timeoutMs`; a throw
 * from `fn` (a daemon not answering yet) counts as "not yet".
 */
export function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
  stepMs = 100,
): Promise<T> {
  return pollUntil(what, fn, { timeoutMs, stepMs, retryErrors: true });
}
