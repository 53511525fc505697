import { readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { VipmeshError } from '../errors.js';

/** Name prefix of the snapshots `vipmesh snapshot save` takes (k3s's on-demand name). */
export const ON_DEMAND_NAME = 'on-demand';
/** Name prefix of the scheduled snapshots the server takes (k3s's `etcd-snapshot`). */
export const SCHEDULED_NAME = 'etcd-snapshot';
/** Scheduled snapshots kept per node [5, as k3s]. */
export const DEFAULT_RETENTION = 5;
/** Suffix of a snapshot still being written: `ls` never shows it, `save` removes it when it fails. */
export const PARTIAL_SUFFIX = '.part';

/** `<data-dir>/server/db/snapshots`: where snapshots go unless `--snapshot-dir` says otherwise. */
export function defaultSnapshotDir(dataDir: string): string {
  return join(dataDir, 'server', 'db', 'snapshots');
}

/** A name or node name that is safe as part of a file name (letters, digits, `.`, `_`, `-`). */
const SAFE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** `<name>-<node>-<unix seconds>`. */
const SNAPSHOT_FILE = /^(.+)-(\d{9,})$/;

/** `<name>-<node>-<unix seconds>`, as k3s names its snapshots. */
export function snapshotName(name: string, node: string, atMs: number): string {
  for (const [what, v] of [
    ['--name', name],
    ['node name', node],
  ] as const) {
    if (!SAFE.test(v)) {
      throw new VipmeshError(
        'VIPMESH_SNAPSHOT_BAD_NAME',
        `snapshot ${what} "${v}" must be letters, digits, ".", "_" or "-" (and not start with one of the last three)`,
      );
    }
  }
  return `${name}-${node}-${Math.floor(atMs / 1000)}`;
}

/** One snapshot in a directory, as `vipmesh snapshot ls` shows it. */
export interface SnapshotEntry {
  name: string;
  /** `file://` URL of the file. */
  location: string;
  size: number;
  /** When it was taken: the time in its name. */
  createdAt: Date;
}

/**
 * The snapshots in `dir`, newest first: files named `<name>-<node>-<unix seconds>`. Files still being
 * written (`.part`) and anything else are left out; a missing directory has none.
 */
export function listSnapshots(dir: string): SnapshotEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new VipmeshError(
      'VIPMESH_SNAPSHOT_DIR',
      `cannot read snapshot directory ${dir}: ${(err as Error).message}`,
      {
        cause: err,
        details: { dir },
      },
    );
  }
  const out: SnapshotEntry[] = [];
  for (const name of names) {
    const m = SNAPSHOT_FILE.exec(name);
    if (m === null || name.startsWith('.')) continue;
    const path = resolve(dir, name);
    const st = statSync(path, { throwIfNoEntry: false });
    if (st === undefined || !st.isFile()) continue;
    out.push({ name, location: `file://${path}`, size: st.size, createdAt: new Date(Number(m[2]) * 1000) });
  }
  return out.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || b.name.localeCompare(a.name));
}

/**
 * Keep the newest `retention` snapshots named `<name>-<node>-…` in `dir` and delete the older ones (other
 * names and other nodes' snapshots are not touched). Returns the names deleted.
 */
export function pruneSnapshots(dir: string, name: string, node: string, retention: number): string[] {
  if (!Number.isInteger(retention) || retention < 1) {
    throw new VipmeshError(
      'VIPMESH_SNAPSHOT_BAD_FLAG',
      `--snapshot-retention must be a whole number of at least 1, not ${retention}`,
    );
  }
  const prefix = `${name}-${node}-`;
  const mine = listSnapshots(dir).filter(
    (s) => s.name.startsWith(prefix) && /^\d+$/.test(s.name.slice(prefix.length)),
  );
  const old = mine.slice(retention);
  for (const s of old) rmSync(join(dir, s.name), { force: true });
  return old.map((s) => s.name);
}

/** Delete the named snapshots from `dir`; every name must be a snapshot there (checked before any is deleted). */
export function deleteSnapshots(dir: string, names: readonly string[]): void {
  const have = new Set(listSnapshots(dir).map((s) => s.name));
  const missing = names.filter((n) => !have.has(n));
  if (missing.length > 0) {
    throw new VipmeshError(
      'VIPMESH_SNAPSHOT_NOT_FOUND',
      `no snapshot ${missing.map((n) => `"${n}"`).join(', ')} in ${dir}`,
      { details: { dir, missing } },
    );
  }
  for (const n of names) rmSync(join(dir, n), { force: true });
}
