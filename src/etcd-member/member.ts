/**
 * A supervised etcd member: the `etcd` process started with {@link etcdArgs}, its JSON log lines passed
 * into vipmesh's log, restarted with a doubling backoff when it dies, stopped (SIGTERM, then SIGKILL) on
 * close, and a health check over its TLS client URL.
 */
import { type ChildProcess, spawn as nodeSpawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { createInterface } from 'node:readline';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import { VipmeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { clientUrlOf, DEFAULT_ETCD_BINARY, etcdArgs, type MemberConfig } from './config.js';

/** Starts a process; the production one is `child_process.spawn`. */
export type Spawn = (command: string, args: string[]) => ChildProcess;

/** Options of {@link EtcdMember}. Defaults in brackets. */
export interface EtcdMemberOptions {
  config: MemberConfig;
  /** [/usr/bin/etcd] */
  binary?: string;
  logger: Logger;
  clock?: Clock;
  spawn?: Spawn;
  /** First pause before a restart; doubles on each death in a row up to `maxBackoffMs` [500 ms]. */
  backoffMs?: number;
  /** [30 s] */
  maxBackoffMs?: number;
  /** A run this long resets the backoff [60 s]. */
  stableMs?: number;
}

/** Lines of etcd's own output kept for the error of a member that will not start. */
const TAIL_LINES = 20;

/**
 * The production spawn: under `setpriv --pdeathsig KILL` when util-linux has it, so a vipmesh that is
 * killed (SIGKILL, OOM) takes its member with it instead of leaving it holding the ports and the data dir.
 */
export function defaultSpawn(command: string, args: string[]): ChildProcess {
  const setpriv = '/usr/bin/setpriv';
  const [cmd, argv] = existsSync(setpriv)
    ? [setpriv, ['--pdeathsig', 'KILL', '--', command, ...args]]
    : [command, args];
  return nodeSpawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** One etcd member process under supervision. */
export class EtcdMember {
  readonly #o: EtcdMemberOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  #child: ChildProcess | undefined;
  #timer: TimerHandle | undefined;
  #closed = false;
  #deaths = 0;
  #startedAt = 0;
  #tail: string[] = [];
  /** Starts so far (1 after start(); each restart adds one). */
  starts = 0;

  constructor(o: EtcdMemberOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#log = o.logger;
  }

  /** The client URL (loopback). */
  get clientUrl(): string {
    return clientUrlOf(this.#o.config);
  }

  /** The process id of the running member, if one runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The last lines etcd wrote (for errors). */
  get tail(): string[] {
    return [...this.#tail];
  }

  start(): void {
    if (this.#closed || this.#child !== undefined) return;
    const binary = this.#o.binary ?? DEFAULT_ETCD_BINARY;
    const args = etcdArgs(this.#o.config);
    const child = (this.#o.spawn ?? defaultSpawn)(binary, args);
    this.#child = child;
    this.starts += 1;
    this.#startedAt = this.#clock.now();
    this.#log.info(
      { pid: child.pid, name: this.#o.config.name, starts: this.starts },
      'etcd member starting',
    );
    if (child.stderr !== null) {
      createInterface({ input: child.stderr }).on('line', (line) => this.#logLine(line));
    }
    child.once('error', (err) => {
      this.#log.error({ err: err.message, binary }, 'cannot run etcd');
    });
    child.once('close', (code, signal) => this.#exited(child, code, signal));
  }

  #logLine(line: string): void {
    this.#tail.push(line);
    if (this.#tail.length > TAIL_LINES) this.#tail.shift();
    let entry: { level?: string; msg?: string; [k: string]: unknown };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      this.#log.info({ line }, 'etcd');
      return;
    }
    const { level, msg, ts: _ts, caller: _caller, ...fields } = entry;
    const text = `etcd: ${msg ?? ''}`;
    if (level === 'error' || level === 'fatal' || level === 'panic') this.#log.error(fields, text);
    else if (level === 'warn') this.#log.warn(fields, text);
    else if (level === 'debug') this.#log.debug(fields, text);
    else this.#log.info(fields, text);
  }

  #exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    if (this.#closed) return;
    const ran = this.#clock.now() - this.#startedAt;
    this.#deaths = ran >= (this.#o.stableMs ?? 60_000) ? 1 : this.#deaths + 1;
    const base = this.#o.backoffMs ?? 500;
    const delay = Math.min(this.#o.maxBackoffMs ?? 30_000, base * 2 ** (this.#deaths - 1));
    this.#log.error(
      { code, signal, ranMs: ran, restartInMs: delay, tail: this.#tail.slice(-3) },
      'etcd member exited; restarting',
    );
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.start();
    }, delay);
  }

  /**
   * Resolve once the member answers `/health` with `true` (it has a leader and serves), polling every
   * `everyMs`; after `timeoutMs`, `VIPMESH_ETCD_UNHEALTHY` with etcd's last lines.
   */
  async waitHealthy(timeoutMs: number, everyMs = 200): Promise<void> {
    const deadline = this.#clock.now() + timeoutMs;
    let last = 'no answer yet';
    for (;;) {
      if (this.#closed) throw new VipmeshError('VIPMESH_ETCD_UNHEALTHY', 'the etcd member was stopped');
      try {
        const h = await health(this.clientUrl, this.#o.config.paths);
        if (h.ok) return;
        last = h.detail;
      } catch (err) {
        last = (err as Error).message;
      }
      if (this.#clock.now() >= deadline) {
        throw new VipmeshError(
          'VIPMESH_ETCD_UNHEALTHY',
          `the etcd member ${this.#o.config.name} is not healthy after ${timeoutMs} ms (${last}); a joining member needs a quorum of the others up${this.#tail.length > 0 ? `; etcd said: ${this.#tail.slice(-3).join(' | ')}` : ''}`,
          { details: { member: this.#o.config.name, last } },
        );
      }
      await new Promise<void>((r) => this.#clock.setTimeout(r, everyMs));
    }
  }

  /** Stop supervising and stop the member: SIGTERM, then SIGKILL after `graceMs` [10 s]. */
  async close(graceMs = 10_000): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('close', () => r()));
    child.kill('SIGTERM');
    // A real timer: it bounds the wait for a real process and decides nothing a test drives.
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await gone;
    clearTimeout(kill);
  }
}

/** GET `<clientUrl>/health` with the member's client certificate. */
function health(
  clientUrl: string,
  files: { caFile: string; certFile: string; keyFile: string },
): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${clientUrl}/health`,
      {
        ca: readFileSync(files.caFile),
        cert: readFileSync(files.certFile),
        key: readFileSync(files.keyFile),
        timeout: 2000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (body.length < 4096) body += c;
        });
        res.on('end', () => {
          let ok = false;
          try {
            ok = (JSON.parse(body) as { health?: string }).health === 'true';
          } catch {
            ok = false;
          }
          resolve({ ok, detail: `health ${res.statusCode}: ${body.trim()}` });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('health check timed out')));
    req.on('error', reject);
    req.end();
  });
}
