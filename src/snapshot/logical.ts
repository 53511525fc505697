import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { VipmeshError } from '../errors.js';
import { startDatastore } from '../kine/index.js';
import { freePort } from '../util/free-port.js';

const run = promisify(execFile);

/** Options of {@link loadEtcdSnapshot}. */
export interface LogicalLoadOptions {
  /** A real etcd's snapshot (bbolt). */
  file: string;
  /** True when it ends in etcd's SHA-256 trailer (else etcdctl is told to skip the hash check). */
  checksummed: boolean;
  /** The new data file of the embedded datastore to write the keys into. */
  target: string;
  logger: Logger;
  etcdBinary?: string;
  etcdctlBinary?: string;
  /** How long the temporary etcd may take to serve [30 s]. */
  startTimeoutMs?: number;
}

/** Keys read from the temporary etcd per request. */
const PAGE = 500;
/** Puts per transaction: etcd's (and the embedded datastore's) default --max-txn-ops is 128. */
const TXN_OPS = 100;
const RESTORE_HINT =
  'restore it into etcd instead: `etcdctl snapshot restore FILE --data-dir DIR` on each member, then start vipmesh with --datastore-endpoint';

/**
 * A real etcd's snapshot, restored key by key: `etcdctl snapshot restore` into a temporary directory, a
 * temporary etcd on loopback ports serving it, every key (latest value; keys attached to a lease left out)
 * written into a new embedded datastore at `target`. Resolves with the keys written.
 */
export async function loadEtcdSnapshot(o: LogicalLoadOptions): Promise<number> {
  const etcdctl = o.etcdctlBinary ?? 'etcdctl';
  const tmp = mkdtempSync(join(tmpdir(), 'vipmesh-restore-'));
  const log = o.logger.child({ op: 'restore', file: o.file });
  let etcd: ChildProcess | undefined;
  let source: Etcd3 | undefined;
  let sink: Etcd3 | undefined;
  let ds: Awaited<ReturnType<typeof startDatastore>> | undefined;
  try {
    const [client, peer] = [await freePort(), await freePort()];
    const c = `http://127.0.0.1:${client}`;
    const p = `http://127.0.0.1:${peer}`;
    const dataDir = join(tmp, 'etcd');
    const restoreArgs = ['snapshot', 'restore', o.file, `--data-dir=${dataDir}`, '--name=restore'];
    restoreArgs.push(`--initial-cluster=restore=${p}`, `--initial-advertise-peer-urls=${p}`);
    if (!o.checksummed) restoreArgs.push('--skip-hash-check');
    try {
      await run(etcdctl, restoreArgs, { env: { ...process.env, ETCDCTL_API: '3' } });
    } catch (err) {
      throw needsEtcd(
        o.file,
        `\`${etcdctl} snapshot restore\` failed: ${(err as Error).message.trim()}`,
        err,
      );
    }
    etcd = spawn(
      o.etcdBinary ?? 'etcd',
      [
        '--name=restore',
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${c}`,
        `--advertise-client-urls=${c}`,
        `--listen-peer-urls=${p}`,
        // One private member on loopback: elect itself in 100 ms rather than etcd's default 1 s.
        '--heartbeat-interval=10',
        '--election-timeout=100',
        '--log-level=error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    etcd.stderr?.on('data', (d) => {
      stderr = (stderr + String(d)).slice(-4096);
    });
    const exited = new Promise<never>((_, reject) => {
      etcd?.once('error', (err) =>
        reject(needsEtcd(o.file, `cannot run ${o.etcdBinary ?? 'etcd'}: ${err.message}`, err)),
      );
      etcd?.once('exit', (code) =>
        reject(needsEtcd(o.file, `the temporary etcd exited (${code}): ${stderr.trim()}`)),
      );
    });
    exited.catch(() => undefined);
    await Promise.race([serving(o.startTimeoutMs ?? 30_000, c), exited]);
    source = new Etcd3({ hosts: c, grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024 } });
    ds = await startDatastore({
      dataDir: dirname(o.target),
      dataFile: o.target,
      listenAddress: `unix://${join(tmp, 'kine.sock')}`,
      logger: log.child({ module: 'kine' }),
    });
    sink = new Etcd3({ hosts: ds.url });
    const keys = await copyKeys(source, sink);
    log.info({ keys }, 'etcd snapshot read');
    return keys;
  } finally {
    source?.close();
    sink?.close();
    await ds?.close();
    if (etcd !== undefined && etcd.exitCode === null && etcd.signalCode === null) {
      const gone = new Promise((r) => etcd?.once('exit', r));
      etcd.kill('SIGKILL');
      await gone;
    }
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Poll the temporary etcd's /health until it answers, for at most `timeoutMs`. Over plain HTTP: a gRPC
 * channel that failed to connect backs off (1 s, 2 s, ...) and would add seconds to every restore.
 */
async function serving(timeoutMs: number, url: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
      last = new Error(`/health answered ${res.status}`);
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new VipmeshError(
        'VIPMESH_SNAPSHOT_RESTORE',
        `the temporary etcd on ${url} did not serve within ${timeoutMs} ms: ${(last as Error).message}`,
        { cause: last },
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every key of `from` without a lease, put into `to`; returns how many. */
async function copyKeys(from: Etcd3, to: Etcd3): Promise<number> {
  let key = Buffer.from([0]);
  let n = 0;
  for (;;) {
    const page = await from.kv.range({ key, range_end: Buffer.from([0]), limit: PAGE });
    const puts = page.kvs.filter((kv) => String(kv.lease) === '0');
    for (let i = 0; i < puts.length; i += TXN_OPS) {
      const batch = puts.slice(i, i + TXN_OPS);
      await to.kv.txn({
        compare: [],
        success: batch.map((kv) => ({ request_put: { key: kv.key, value: kv.value } })),
        failure: [],
      });
      n += batch.length;
    }
    if (!page.more || page.kvs.length === 0) return n;
    key = Buffer.concat([page.kvs[page.kvs.length - 1]!.key, Buffer.from([0])]);
  }
}

function needsEtcd(file: string, why: string, cause?: unknown): VipmeshError {
  return new VipmeshError(
    'VIPMESH_SNAPSHOT_NEEDS_ETCD',
    `snapshot ${file} is a real etcd's (bbolt): ${why}; ${RESTORE_HINT}`,
    {
      ...(cause === undefined ? {} : { cause }),
      details: { file },
    },
  );
}
