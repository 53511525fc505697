import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';

/**
 * The worker's code (plain CommonJS, so it runs the same from src/ under tsx and from dist/). It opens its own
 * connection to the data file and runs checkpoints on request. PASSIVE ones copy WAL frames into the database
 * and fsync it without taking the write lock, so the main connection keeps committing meanwhile; a TRUNCATE
 * one also empties the WAL file, and is asked for only while the committer holds writes back.
 */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.file);
db.pragma('synchronous = NORMAL');
db.pragma('busy_timeout = 5000');
parentPort.on('message', (m) => {
  if (m === 'close') { db.close(); process.exit(0); }
  const started = performance.now();
  try {
    const [r] = db.pragma(m === 'TRUNCATE' ? 'wal_checkpoint(TRUNCATE)' : 'wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ ok: true, log: r.log, checkpointed: r.checkpointed, ms: performance.now() - started });
  } catch (err) {
    parentPort.postMessage({ ok: false, error: String(err && err.message || err) });
  }
});
`;

/** PASSIVE: copy what it can beside the writer; TRUNCATE: copy everything and empty the WAL file. */
export type CheckpointMode = 'PASSIVE' | 'TRUNCATE';

/** A checkpoint result: WAL frames in the log, frames copied into the database, and how long it took. */
interface CheckpointResult {
  log: number;
  checkpointed: number;
  ms: number;
}

/**
 * How long the worker is kept after its last checkpoint. A worker thread is a second V8 isolate: an idle
 * `vipmesh kine` with one running measured 9 MiB more RSS (docs/memory.md). Starting one again costs under
 * 1 ms on the event loop, but its first checkpoint ends 150-240 ms after the request instead of 2-6 ms
 * (load average ~10): a compaction's TRUNCATE after an idle spell holds writes that much longer. So it is
 * kept while writes keep coming.
 */
export const CHECKPOINT_WORKER_IDLE_MS = 30_000;

/** Options of {@link Checkpointer}. Defaults in brackets. */
interface CheckpointerOptions {
  /** Stop the worker after this long without a checkpoint [{@link CHECKPOINT_WORKER_IDLE_MS}]. */
  idleMs?: number;
  /** For the idle timer [systemClock]. */
  clock?: Clock;
}

/**
 * Checkpoints off the event loop. Measured with SQLite's own auto-checkpoint (which runs inside the COMMIT
 * that crosses 1000 pages, two fsyncs included) under a 16-client churn on this project's build machine:
 * commit p99 34 ms, max 153 ms, and 18-80 ms per explicit checkpoint, all on the event loop. Here the main
 * connection runs with wal_autocheckpoint=0 and asks this worker instead; the WAL then restarts from its
 * first frame at the next commit after a complete checkpoint. The worker is started by the first request
 * and stopped after {@link CHECKPOINT_WORKER_IDLE_MS} without one, so a datastore nobody writes to runs
 * no second thread.
 */
export class Checkpointer {
  readonly #file: string;
  readonly #sqlite: string;
  readonly #log: Logger;
  readonly #idleMs: number;
  readonly #clock: Clock;
  #worker: Worker | undefined;
  #idleTimer: TimerHandle | undefined;
  /** Workers told to stop that have not exited yet (close waits for them). */
  readonly #exiting = new Set<Promise<unknown>>();
  #running = false;
  /** Answered by the running checkpoint. */
  #current: Array<(r: CheckpointResult | undefined) => void> = [];
  /** Asked while one ran: answered by the next. */
  #next: Array<(r: CheckpointResult | undefined) => void> = [];
  /** The mode of the next checkpoint: TRUNCATE when any caller waiting for it asked for one. */
  #nextMode: CheckpointMode = 'PASSIVE';
  #closed = false;

  constructor(file: string, log: Logger, opts: CheckpointerOptions = {}) {
    this.#file = file;
    this.#log = log;
    this.#sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    this.#idleMs = opts.idleMs ?? CHECKPOINT_WORKER_IDLE_MS;
    this.#clock = opts.clock ?? systemClock;
  }

  /** True while the worker thread exists (from the first request until it has been idle for `idleMs`). */
  get started(): boolean {
    return this.#worker !== undefined;
  }

  #spawn(): Worker {
    // The worker needs no TypeScript loader: don't pass on --import tsx and the like.
    const worker = new Worker(WORKER, {
      eval: true,
      workerData: { file: this.#file, sqlite: this.#sqlite },
      execArgv: [],
    });
    worker.unref();
    worker.on('message', (m: { ok: boolean; error?: string } & CheckpointResult) => this.#done(m));
    worker.on('error', (err) => {
      this.#log.error({ err }, 'checkpoint worker failed');
      if (this.#worker === worker) this.#worker = undefined;
      if (this.#running) this.#done({ ok: false, error: err.message, log: 0, checkpointed: 0, ms: 0 });
    });
    return worker;
  }

  /**
   * Ask for a checkpoint (default PASSIVE); resolves when one of at least that mode that started after the
   * call has ended (undefined if it failed).
   */
  request(mode: CheckpointMode = 'PASSIVE'): Promise<CheckpointResult | undefined> {
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      if (mode === 'TRUNCATE') this.#nextMode = mode;
      if (this.#running) {
        this.#next.push(resolve);
        return;
      }
      this.#current.push(resolve);
      this.#start();
    });
  }

  /** True while a checkpoint runs. */
  get running(): boolean {
    return this.#running;
  }

  #start(): void {
    this.#running = true;
    if (this.#idleTimer !== undefined) this.#clock.clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#worker ??= this.#spawn();
    this.#worker.postMessage(this.#nextMode);
    this.#nextMode = 'PASSIVE';
  }

  /** Stop the worker once it has been idle for `idleMs` (the next request starts another). */
  #armIdle(): void {
    this.#idleTimer = this.#clock.setTimeout(() => {
      this.#idleTimer = undefined;
      if (!this.#running) this.#stopWorker();
    }, this.#idleMs);
  }

  #stopWorker(): void {
    const worker = this.#worker;
    if (worker === undefined) return;
    this.#worker = undefined;
    const exited = new Promise((r) => worker.once('exit', r));
    this.#exiting.add(exited);
    void exited.then(() => this.#exiting.delete(exited));
    worker.postMessage('close');
  }

  #done(m: { ok: boolean; error?: string } & CheckpointResult): void {
    this.#running = false;
    if (!m.ok) this.#log.warn({ error: m.error }, 'checkpoint failed');
    const result = m.ok ? { log: m.log, checkpointed: m.checkpointed, ms: m.ms } : undefined;
    for (const w of this.#current.splice(0)) w(result);
    if (this.#next.length > 0 && !this.#closed) {
      this.#current = this.#next;
      this.#next = [];
      this.#start();
    } else if (!this.#closed) {
      this.#armIdle();
    }
  }

  /** Finish a running checkpoint, then stop the worker. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#running) await new Promise((r) => this.#current.push(r));
    for (const w of this.#next.splice(0)) w(undefined);
    if (this.#idleTimer !== undefined) this.#clock.clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#worker?.ref();
    this.#stopWorker();
    await Promise.all(this.#exiting);
  }
}
