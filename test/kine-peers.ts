/**
 * Helpers shared by the datastore tests and bench/kine.ts: a real etcd on loopback with a temporary data
 * dir, free ports, and etcdctl runs.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Run etcdctl (API v3) against `endpoint` (unless `args` has its own `--endpoints=`); never rejects. */
export function etcdctl(
  endpoint: string,
  args: string[],
  stdin?: string | Buffer,
  timeoutMs = 10_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      'etcdctl',
      [
        // etcdctl adds up repeated --endpoints flags: an --endpoints in args replaces this one.
        ...(args.some((a) => a.startsWith('--endpoints=')) ? [] : [`--endpoints=${endpoint}`]),
        '--dial-timeout=3s',
        '--command-timeout=5s',
        ...args,
      ],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
    if (stdin !== undefined) child.stdin?.end(stdin);
    else child.stdin?.end();
  });
}

/** A real etcd (Debian etcd-server) on loopback. */
export interface EtcdPeer {
  endpoint: string;
  url: string;
  dataDir: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** Start etcd on free loopback ports with a temporary data dir; resolves once it answers. */
export async function startEtcd(name = 'default'): Promise<EtcdPeer> {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'vipmesh-etcd-'));
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const proc = spawn(
    'etcd',
    [
      `--name=${name}`,
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=${name}=${peer}`,
      '--log-level=error',
      '--logger=zap',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  const endpoint = `127.0.0.1:${clientPort}`;
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) break;
    // Healthy is not yet ready: etcd serves reads before its member has published its name and client
    // URLs, and until then `member list` calls it "unstarted".
    const r = await etcdctl(endpoint, ['member', 'list'], undefined, 3000);
    if (r.code === 0 && r.stdout.includes(', started, ')) return { endpoint, url, dataDir, proc, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`etcd did not start: ${stderr}`);
}

/** `vipmesh kine` run from source as a child process, and everything it printed so far. */
export interface KineCli {
  proc: ChildProcess;
  /** stdout and stderr so far. */
  out(): string;
}

/**
 * Start `vipmesh kine` on 127.0.0.1:`port` with `dir` as its data dir (plus `args`); resolves once it logs
 * "datastore serving", rejects if it exits first. `env` is added to this process's environment.
 */
export async function startKineCli(
  dir: string,
  port: number,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<KineCli> {
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'kine',
      '--listen-address',
      `127.0.0.1:${port}`,
      '--data-dir',
      dir,
      ...args,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      // tsx children stay out of tap's coverage (see childEnv in src/lab).
      env: { ...process.env, ...env, _TAPJS_PROCESSINFO_COVERAGE_: '0' },
    },
  );
  // Not left running if the test times out before it serves.
  process.once('exit', () => proc.kill('SIGKILL'));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('datastore serving')) resolve();
    });
    proc.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    proc.once('exit', () => reject(new Error(`kine exited before serving: ${out}`)));
  });
  return { proc, out: () => out };
}
