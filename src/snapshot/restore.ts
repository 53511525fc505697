import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { VipmeshError } from '../errors.js';
import { SCHEMA_VERSION } from '../kine/index.js';
import { checkSnapshotFile, type SnapshotFile } from './format.js';
import { loadEtcdSnapshot } from './logical.js';
import { syncDir } from './save.js';

/** Options of {@link restoreSnapshot}. */
export interface RestoreOptions {
  /** The snapshot file: a vipmesh or `etcdctl snapshot save` file of the embedded datastore, or a real etcd's. */
  file: string;
  /** The embedded datastore's directory (`<data-dir>/server/db`); its `state.db` is replaced. */
  dbDir: string;
  logger: Logger;
  /** The `etcd` and `etcdctl` binaries a real etcd snapshot is read with [from PATH]. */
  etcdBinary?: string;
  etcdctlBinary?: string;
}

/** What a restore did. */
export interface RestoreResult {
  kind: SnapshotFile['kind'];
  /** The data file now in place. */
  dataFile: string;
  /** Where the data file it replaced was moved (with its -wal and -shm), if there was one. */
  previous: string | undefined;
  /** Keys written (a real etcd snapshot, restored key by key) or undefined (a SQLite file, put in place). */
  keys: number | undefined;
}

/**
 * Put a snapshot in place as the embedded datastore's data file, with the server stopped. The file is
 * checked first (trailer, pages, SQLite's integrity check and the datastore schema) into a new file beside
 * the data file, and only then swapped in: a refused file changes nothing. The old data file is kept as
 * `state.db.pre-restore-<unix seconds>`. A SQLite snapshot is the data file itself; a real etcd's (bbolt)
 * is read with `etcdctl snapshot restore` and a temporary etcd on loopback, and its keys written into a new
 * data file (keys attached to a lease, which would outlive their owner, are left out).
 */
export async function restoreSnapshot(o: RestoreOptions): Promise<RestoreResult> {
  const snap = checkSnapshotFile(o.file);
  const dataFile = join(o.dbDir, 'state.db');
  await assertStopped(o.dbDir);
  mkdirSync(o.dbDir, { recursive: true, mode: 0o700 });
  const staged = join(o.dbDir, `.restore-${randomUUID()}.db`);
  let keys: number | undefined;
  try {
    if (snap.kind === 'sqlite') {
      copyPrefix(o.file, staged, snap.dataBytes);
      checkDatastoreFile(staged, o.file);
    } else {
      keys = await loadEtcdSnapshot({
        file: o.file,
        checksummed: snap.checksummed,
        target: staged,
        logger: o.logger,
        ...(o.etcdBinary === undefined ? {} : { etcdBinary: o.etcdBinary }),
        ...(o.etcdctlBinary === undefined ? {} : { etcdctlBinary: o.etcdctlBinary }),
      });
    }
  } catch (err) {
    removeDb(staged);
    throw err;
  }
  let previous: string | undefined;
  if (existsSync(dataFile)) {
    previous = `${dataFile}.pre-restore-${Math.floor(Date.now() / 1000)}`;
    for (const ext of ['', '-wal', '-shm']) {
      if (existsSync(dataFile + ext)) renameSync(dataFile + ext, previous + ext);
    }
  }
  renameSync(staged, dataFile);
  syncDir(o.dbDir);
  o.logger.info({ file: o.file, kind: snap.kind, dataFile, previous, keys }, 'snapshot restored');
  return { kind: snap.kind, dataFile, previous, keys };
}

/** Refuse while a server serves the data dir: its datastore socket answers. */
async function assertStopped(dbDir: string): Promise<void> {
  const sock = join(dbDir, 'kine.sock');
  if (!existsSync(sock)) return;
  const answered = await new Promise<boolean>((resolve) => {
    const c = connect(sock);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (answered) {
    throw new VipmeshError(
      'VIPMESH_SNAPSHOT_SERVER_RUNNING',
      `a server is using ${dbDir} (${sock} answers): stop it before restoring, or start it with --cluster-reset --restore-path`,
      { details: { dbDir } },
    );
  }
}

/** Copy the first `bytes` of `from` (the database without its trailer) to a new 0600 file `to`. */
function copyPrefix(from: string, to: string, bytes: number): void {
  const src = openSync(from, 'r');
  const dst = openSync(to, 'wx', 0o600);
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let pos = 0; pos < bytes; ) {
      const n = readSync(src, buf, 0, Math.min(buf.length, bytes - pos), pos);
      if (n === 0) break;
      let off = 0;
      while (off < n) off += writeSync(dst, buf, off, n - off, pos + off);
      pos += n;
    }
  } finally {
    closeSync(src);
    closeSync(dst);
  }
}

/** SQLite's integrity check and the datastore's schema on a staged copy; throws naming `shown`. */
function checkDatastoreFile(file: string, shown: string): void {
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { fileMustExist: true });
    const check = db.pragma('integrity_check', { simple: true });
    if (check !== 'ok') throw new Error(`integrity check: ${String(check)}`);
    const tables = new Set(
      (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
        (r) => r.name,
      ),
    );
    if (!tables.has('kine') || !tables.has('meta'))
      throw new Error('it is a SQLite file but not a vipmesh datastore');
    const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
      | { value: string }
      | undefined;
    const version = Number(row?.value ?? 0);
    if (version > SCHEMA_VERSION) {
      throw new Error(`its schema version ${version} is newer than this vipmesh's (${SCHEMA_VERSION})`);
    }
    db.pragma('journal_mode = DELETE');
  } catch (err) {
    throw new VipmeshError('VIPMESH_SNAPSHOT_INVALID', `snapshot ${shown}: ${(err as Error).message}`, {
      cause: err,
      details: { file: shown },
    });
  } finally {
    db?.close();
  }
}

/** Remove a SQLite file and its companions. */
export function removeDb(file: string): void {
  for (const ext of ['', '-wal', '-shm', '-journal']) rmSync(file + ext, { force: true });
}
