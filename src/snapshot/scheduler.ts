import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.js';
import { Counter, Gauge, type Registry } from '../metrics.js';
import type { CronSchedule } from './cron.js';
import { pruneSnapshots, SCHEDULED_NAME, snapshotName } from './names.js';
import { type SavedSnapshot, type SnapshotSource, saveSnapshot } from './save.js';

/** Options of {@link SnapshotScheduler}. */
export interface SnapshotSchedulerOptions {
  schedule: CronSchedule;
  /** Where snapshots go (`<data-dir>/server/db/snapshots` by default). */
  dir: string;
  /** Scheduled snapshots of this node kept [5]. */
  retention: number;
  nodeName: string;
  /** The datastore, and its name for errors. */
  source: SnapshotSource;
  endpoint: string;
  /** Asked at each run: false skips it (a server that is not the elected master). */
  shouldTake: () => boolean;
  clock: Clock;
  logger: Logger;
  registry?: Registry;
}

/** The longest delay a Node timer takes (2^31 - 1 ms, about 24.8 days); a later run re-arms on the way. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Scheduled snapshots: at each time of the cron schedule, if `shouldTake()`, a snapshot named
 * `etcd-snapshot-<node>-<unix seconds>` is saved into `dir` and the node's scheduled snapshots beyond
 * `retention` are deleted. A failed one (disk full, datastore gone) is logged and counted, leaves no
 * partial file, and the schedule goes on. A run that comes while the last is still saving is skipped.
 * Metrics: `vipmesh_snapshot_last_success_timestamp_seconds`, `vipmesh_snapshot_failures_total`,
 * `vipmesh_snapshot_last_size_bytes`.
 */
export class SnapshotScheduler {
  readonly #o: SnapshotSchedulerOptions;
  readonly #log: Logger;
  readonly #lastSuccess: Gauge;
  readonly #lastSize: Gauge;
  readonly #failures: Counter;
  #timer: TimerHandle | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(o: SnapshotSchedulerOptions) {
    this.#o = o;
    this.#log = o.logger.child({ op: 'snapshot' });
    const registers = o.registry === undefined ? [] : [o.registry];
    this.#lastSuccess = new Gauge({
      name: 'vipmesh_snapshot_last_success_timestamp_seconds',
      help: 'Unix time of the last scheduled datastore snapshot that was saved',
      registers,
    });
    this.#lastSize = new Gauge({
      name: 'vipmesh_snapshot_last_size_bytes',
      help: 'Size of the last scheduled datastore snapshot that was saved',
      registers,
    });
    this.#failures = new Counter({
      name: 'vipmesh_snapshot_failures_total',
      help: 'Scheduled datastore snapshots that failed',
      registers,
    });
  }

  /** Arm the timer for the next time of the schedule. */
  start(): void {
    this.#arm();
  }

  /** Stop the schedule; resolves when a snapshot being saved is done. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** The next run (epoch ms), or undefined. */
  next(): number | undefined {
    return this.#o.schedule.next(this.#o.clock.now());
  }

  #arm(): void {
    if (this.#stopped) return;
    const due = this.next();
    if (due === undefined) {
      this.#log.warn({ schedule: this.#o.schedule.expression }, 'the snapshot schedule has no next run');
      return;
    }
    const wait = (): void => {
      const left = due - this.#o.clock.now();
      if (left > 0) {
        this.#timer = this.#o.clock.setTimeout(wait, Math.min(left, MAX_TIMER_MS));
        return;
      }
      this.#timer = undefined;
      this.#fire();
      this.#arm();
    };
    wait();
  }

  #fire(): void {
    if (!this.#o.shouldTake()) {
      this.#log.debug('not the elected master: no scheduled snapshot here');
      return;
    }
    if (this.#running !== undefined) {
      this.#log.warn('the last scheduled snapshot is still being saved: this run is skipped');
      return;
    }
    this.#running = this.takeNow()
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        this.#running = undefined;
      });
  }

  /** Save one scheduled snapshot now and apply the retention; rejects (after logging) when it fails. */
  async takeNow(): Promise<SavedSnapshot> {
    const o = this.#o;
    const name = snapshotName(SCHEDULED_NAME, o.nodeName, o.clock.now());
    try {
      const saved = await saveSnapshot(o.source, join(o.dir, name), o.endpoint);
      this.#lastSuccess.set(Math.floor(o.clock.now() / 1000));
      this.#lastSize.set(saved.size);
      const pruned = pruneSnapshots(o.dir, SCHEDULED_NAME, o.nodeName, o.retention);
      this.#log.info({ name, size: saved.size, revision: saved.revision, pruned }, 'snapshot saved');
      return saved;
    } catch (err) {
      this.#failures.inc();
      this.#log.error({ err, name, dir: o.dir }, 'scheduled snapshot failed');
      throw err;
    }
  }
}
