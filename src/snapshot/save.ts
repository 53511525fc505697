import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { errnoOf, VipmeshError } from '../errors.js';
import { checkSnapshotFile } from './format.js';
import { PARTIAL_SUFFIX } from './names.js';

/** What a saved snapshot is. */
export interface SavedSnapshot {
  file: string;
  size: number;
  /** The datastore revision the snapshot holds. */
  revision: number;
}

/** The part of the etcd client a snapshot needs (Maintenance.Snapshot). */
export type SnapshotSource = Pick<Etcd3, 'maintenance'>;

/**
 * Maintenance.Snapshot from `source` into `file`, exactly as the stream comes (the database, then etcd's
 * SHA-256 trailer): the same file `etcdctl snapshot save` writes. Online: the datastore takes a consistent
 * copy without stopping writers (the embedded one with SQLite's backup API, etcd from its bbolt
 * transaction). The stream goes to `<file>.part`, which is checked (trailer, page count), fsync-ed and
 * renamed; on any failure (disk full, the stream broken) the part file is removed, so no half snapshot is
 * left for `ls` to show. `endpoint` names the datastore in errors.
 */
export async function saveSnapshot(
  source: SnapshotSource,
  file: string,
  endpoint: string,
): Promise<SavedSnapshot> {
  const dir = dirname(file);
  const part = `${file}${PARTIAL_SUFFIX}`;
  let fd: number;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    fd = openSync(part, 'wx', 0o600);
  } catch (err) {
    throw saveError(file, `cannot create ${part}: ${(err as Error).message}`, err);
  }
  let size = 0;
  let revision = 0;
  try {
    const stream = await source.maintenance.snapshot();
    await new Promise<void>((resolve, reject) => {
      let failed = false;
      stream.on('data', (msg) => {
        if (failed) return;
        try {
          if (revision === 0 && msg.header?.revision !== undefined) revision = Number(msg.header.revision);
          const blob = msg.blob as Buffer;
          let off = 0;
          while (off < blob.length) off += writeSync(fd, blob, off, blob.length - off);
          size += blob.length;
        } catch (err) {
          failed = true;
          (stream as unknown as { cancel?: () => void }).cancel?.();
          reject(saveError(file, `writing ${part}: ${(err as Error).message}`, err));
        }
      });
      stream.on('error', (err) => {
        if (failed) return;
        failed = true;
        reject(saveError(file, `Maintenance.Snapshot from ${endpoint} failed: ${err.message}`, err));
      });
      stream.on('end', () => {
        if (!failed) resolve();
      });
    });
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    checkSnapshotFile(part);
    renameSync(part, file);
    syncDir(dir);
    return { file, size, revision };
  } catch (err) {
    if (fd >= 0) closeSync(fd);
    rmSync(part, { force: true });
    if (err instanceof VipmeshError && err.code === 'VIPMESH_SNAPSHOT_SAVE') throw err;
    const msg =
      err instanceof VipmeshError
        ? err.message
        : `Maintenance.Snapshot from ${endpoint} failed: ${(err as Error).message}`;
    throw saveError(file, msg, err);
  }
}

function saveError(file: string, message: string, cause: unknown): VipmeshError {
  const errno = errnoOf(cause);
  return new VipmeshError('VIPMESH_SNAPSHOT_SAVE', `snapshot ${file} not saved: ${message}`, {
    cause,
    details: { file, ...(errno === undefined ? {} : { errno }) },
  });
}

/** fsync a directory so a rename in it survives a crash. */
export function syncDir(dir: string): void {
  const fd = openSync(join(dir, '.'), 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
