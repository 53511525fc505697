import { Counter, Gauge, Histogram, type Registry } from '../metrics.js';

/** The datastore's Prometheus metrics (`vipmesh_kine_*`), registered on the injected registry. */
export class KineMetrics {
  /** Writes committed per SQLite transaction (group commit). */
  readonly commitBatchWrites: Histogram;
  /** Rows removed by compaction. */
  readonly compactedRows: Counter;
  /** The current store revision. */
  readonly revision: Gauge;

  /** Register on `registry`; `watchers` is read at each scrape for the active watcher count. */
  constructor(registry: Registry, watchers: () => number) {
    const registers = [registry];
    this.commitBatchWrites = new Histogram({
      name: 'vipmesh_kine_commit_batch_writes',
      help: 'Writes committed per SQLite transaction (group commit)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers,
    });
    this.compactedRows = new Counter({
      name: 'vipmesh_kine_compacted_rows_total',
      help: 'Rows removed by compaction',
      registers,
    });
    this.revision = new Gauge({ name: 'vipmesh_kine_revision', help: 'Current store revision', registers });
    new Gauge({
      name: 'vipmesh_kine_watchers',
      help: 'Active watchers',
      registers,
      collect() {
        this.set(watchers());
      },
    });
  }
}
