/**
 * The one-time move of a single server's SQLite datastore into its new etcd member (`--cluster-init` on a
 * server that ran on SQLite): every key without a lease is copied; keys on leases (the election, the
 * servers' liveness) belong to processes that are gone and are left behind. The SQLite files stay where
 * they are, and a marker beside them says they were migrated: the server never opens them again (a data
 * dir with an etcd member runs on etcd).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { VipmeshError } from '../errors.js';
import { startDatastore } from '../kine/index.js';
import type { Logger } from '../log.js';

/** The SQLite file of the embedded datastore under its directory. */
const SQLITE_FILE = 'state.db';
/** The marker written beside it once its keys are in etcd. */
export const MIGRATED_MARKER = 'state.db.migrated-to-etcd';
/** Keys read per page. */
const PAGE = 500;

/** True when `dbDir` holds a SQLite datastore not yet migrated. */
export function needsMigration(dbDir: string): boolean {
  return existsSync(join(dbDir, SQLITE_FILE)) && !existsSync(join(dbDir, MIGRATED_MARKER));
}

/**
 * Copy every key (without a lease) of the SQLite datastore in `dbDir` into `target`, then write the
 * marker. Safe to run again after a crash: it puts the same values. Returns the keys copied.
 */
export async function migrateSqlite(
  dbDir: string,
  target: Etcd3,
  o: { logger: Logger; connect: (url: string) => Etcd3 },
): Promise<number> {
  const ds = await startDatastore({
    dataDir: dbDir,
    listenAddress: `unix://${join(dbDir, 'migrate.sock')}`,
    logger: o.logger.child({ module: 'kine' }),
  });
  const source = o.connect(ds.url);
  let copied = 0;
  let skipped = 0;
  try {
    let from = Buffer.from([0]);
    for (;;) {
      const res = await source.kv.range({ key: from, range_end: Buffer.from([0]), limit: PAGE });
      for (const kv of res.kvs) {
        if (String(kv.lease) !== '0') {
          skipped += 1;
          continue;
        }
        await target.put(kv.key).value(kv.value);
        copied += 1;
      }
      const last = res.kvs.at(-1);
      if (!res.more || last === undefined) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
  } catch (err) {
    throw new VipmeshError(
      'VIPMESH_ETCD_MIGRATE',
      `cannot copy the SQLite datastore in ${dbDir} into etcd (${copied} keys copied; the next start tries again): ${(err as Error).message}`,
      { cause: err, details: { dbDir, copied } },
    );
  } finally {
    source.close();
    await ds.close();
  }
  writeFileSync(
    join(dbDir, MIGRATED_MARKER),
    `${JSON.stringify({ migratedAt: new Date().toISOString(), keys: copied, leasedKeysLeft: skipped })}\n`,
    { mode: 0o600 },
  );
  o.logger.info(
    { keys: copied, leasedKeysLeft: skipped },
    'SQLite datastore copied into etcd; it is not used again',
  );
  return copied;
}
