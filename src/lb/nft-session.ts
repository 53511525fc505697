/**
 * One long-lived `nft -i` that applies updates. Starting `nft` for each update costs more than the update:
 * the process start (tens of ms on a Pi) and, worse, loading the table into nft's cache before it can
 * apply a difference (about 40 ms at 1,000 Services × 10 endpoints). A process that stays keeps its
 * cache; nft refreshes it only when the ruleset's generation moved under it.
 *
 * An update is written to a file in a private scratch directory and sent as one input line,
 * `include "<file>"`, which nft reads and runs as one transaction (all or nothing, as `nft -f` does). The
 * same commands joined by `;` on the input line are also one transaction, but nft's interactive parser is
 * slow on a long line: 100 new Services (300 commands) took 45-52 ms that way and 3-7 ms through the
 * include (`nft -f` of the same file, with its process start, about 20 ms). When the scratch file cannot be
 * written (a full or read-only temporary directory), the update goes on the input line as before.
 * nft's interactive mode prints nothing on success, so each update is followed by a marker, a listing of
 * a table that cannot exist: its error on stderr says the update is done, and whatever stderr held before
 * it is the update's own errors.
 *
 * Anything unexpected (the process exits, stops answering, cannot be started) ends the session and the
 * update is reported as not applied; the caller then replaces the table with `nft -f`, which reports per
 * line, and the next update starts a new session.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock, TimerHandle } from '../clock.js';

/** Start a long-lived program with piped stdio (the seam tests use to run it in a namespace). */
export type SpawnProcess = (file: string, args: readonly string[]) => ChildProcessWithoutNullStreams;

export const spawnProcess: SpawnProcess = (file, args) =>
  spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });

/** Options of {@link NftSession}. Defaults in brackets. */
export interface NftSessionOptions {
  spawn: SpawnProcess;
  clock: Clock;
  /** The nft binary [`nft`]. */
  nft?: string;
  /** An update not confirmed within this ends the session and counts as failed [5 s]. */
  timeoutMs?: number;
  /**
   * Where the private scratch directory for updates is made [the system's temporary directory; the units
   * give each daemon its own]; `null` sends every update on the input line.
   */
  scratchParent?: string | null;
}

/** What one {@link NftSession.run} did: applied, or refused or lost with nft's message. */
export type SessionResult = { ok: true } | { ok: false; message: string };

interface Pending {
  marker: string;
  resolve: (r: SessionResult) => void;
  timer: TimerHandle;
}

/** A table name that cannot exist (the marker's); a counter keeps each marker unique. */
const MARKER_TABLE = 'vipmesh_session_marker_';

/** A long-lived `nft -i`; {@link run} calls are queued, one update in flight at a time. */
export class NftSession {
  readonly #o: NftSessionOptions;
  #child: ChildProcessWithoutNullStreams | undefined;
  #stderr = '';
  #pending: Pending | undefined;
  #seq = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** The scratch directory (made at the first update); null once it could not be made or used. */
  #scratch: string | null | undefined;

  constructor(o: NftSessionOptions) {
    this.#o = o;
  }

  /** Apply `commands` as one transaction. Never throws: a failure is `{ ok: false }` with the reason. */
  run(commands: readonly string[]): Promise<SessionResult> {
    const p = this.#queue.then(() => this.#runNow(commands));
    this.#queue = p;
    return p;
  }

  /** End the process; a later {@link run} fails. */
  close(): void {
    this.#closed = true;
    this.#end('the nft session was closed');
    if (typeof this.#scratch === 'string') rmSync(this.#scratch, { recursive: true, force: true });
    this.#scratch = null;
  }

  /** True while an `nft -i` process is running (tests and metrics). */
  get running(): boolean {
    return this.#child !== undefined;
  }

  #runNow(commands: readonly string[]): Promise<SessionResult> {
    if (this.#closed) return Promise.resolve({ ok: false, message: 'the nft session was closed' });
    if (commands.some((c) => c.includes('\n')))
      return Promise.resolve({ ok: false, message: 'an nft command spans lines' });
    const child = this.#child ?? this.#start();
    if (child === undefined) return Promise.resolve({ ok: false, message: 'cannot start nft -i' });
    const marker = `${MARKER_TABLE}${++this.#seq}`;
    return new Promise<SessionResult>((resolve) => {
      const timer = this.#o.clock.setTimeout(
        () => this.#end(`nft did not confirm an update within ${this.#o.timeoutMs ?? 5000} ms`),
        this.#o.timeoutMs ?? 5000,
      );
      this.#pending = { marker, resolve, timer };
      this.#stderr = '';
      const file = this.#write(commands);
      const line = file === undefined ? commands.join('; ') : `include "${file}"`;
      child.stdin.write(`${line}\nlist table inet ${marker}\n`);
    });
  }

  /**
   * Write `commands` to the scratch file, one per line; its path, or undefined when there is no scratch
   * directory or the write failed (the update then goes on the input line).
   */
  #write(commands: readonly string[]): string | undefined {
    if (this.#scratch === undefined) {
      const parent = this.#o.scratchParent === undefined ? tmpdir() : this.#o.scratchParent;
      this.#scratch = null;
      // nft's include takes a quoted path and expands wildcards in it: a parent with a quote, a newline or
      // a wildcard character in its name cannot be named.
      if (parent !== null && !/["\n*?[\]]/.test(parent)) {
        try {
          this.#scratch = mkdtempSync(join(parent, 'vipmesh-nft-'));
        } catch {
          // no scratch directory: updates go on the input line
        }
      }
    }
    if (this.#scratch === null) return undefined;
    const file = join(this.#scratch, 'update.nft');
    try {
      writeFileSync(file, `${commands.join('\n')}\n`, { mode: 0o600 });
      return file;
    } catch {
      // A full disk, or the directory removed under us: this update goes on the line, the next one
      // makes a new directory.
      rmSync(this.#scratch, { recursive: true, force: true });
      this.#scratch = undefined;
      return undefined;
    }
  }

  #start(): ChildProcessWithoutNullStreams | undefined {
    let child: ChildProcessWithoutNullStreams;
    try {
      child = this.#o.spawn(this.#o.nft ?? 'nft', ['-i']);
    } catch {
      return undefined;
    }
    this.#child = child;
    child.stdout.resume(); // nothing an update prints is needed; keep the pipe from filling
    child.stderr.on('data', (d: Buffer) => {
      if (this.#child !== child) return;
      this.#stderr += d.toString();
      this.#settle();
    });
    child.stdin.on('error', () => undefined); // the exit below says what happened
    const gone = (why: string) => {
      if (this.#child === child) this.#end(why);
    };
    child.on('error', (e) => gone(`nft -i: ${e.message}`));
    child.on('exit', (code, signal) => gone(`nft -i exited (${signal ?? code})`));
    return child;
  }

  /**
   * The marker's error has arrived: what stderr held before its first line is the update's answer. The
   * error is whole once the line under the marker's command (nft's carets) is: settling on the command's
   * line alone left the carets to arrive after, and be read as the next update's refusal.
   */
  #settle(): void {
    const p = this.#pending;
    if (p === undefined) return;
    const command = `\nlist table inet ${p.marker}\n`;
    const at = this.#stderr.indexOf(command);
    if (at < 0 || this.#stderr.indexOf('\n', at + command.length) < 0) return;
    const before = this.#stderr.slice(0, at);
    const own = before.slice(0, Math.max(0, before.lastIndexOf('\n'))).trim();
    this.#stderr = '';
    this.#pending = undefined;
    this.#o.clock.clearTimeout(p.timer);
    p.resolve(own === '' ? { ok: true } : { ok: false, message: own });
  }

  /** Kill the process and fail the update in flight. */
  #end(why: string): void {
    const child = this.#child;
    this.#child = undefined;
    child?.kill('SIGKILL');
    const p = this.#pending;
    this.#pending = undefined;
    if (p !== undefined) {
      this.#o.clock.clearTimeout(p.timer);
      p.resolve({ ok: false, message: why });
    }
  }
}
