import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import type { Logger } from 'pino';

/** Mode of a directory holding datastore state: only its owner may list or enter it. */
export const PRIVATE_DIR_MODE = 0o700;
/** Mode of the database files: only their owner may read or write them. */
export const PRIVATE_FILE_MODE = 0o600;

/** One mode this module changed (modes as octal text, e.g. `0755`). */
export interface ModeChange {
  path: string;
  from: string;
  to: string;
}

const octal = (mode: number): string => `0${(mode & 0o7777).toString(8)}`;

/**
 * Make `dir` a directory only its owner can enter: created 0700 when missing, an existing one chmod-ed to 0700
 * when group or others have any access. A world-writable sticky directory (`/tmp`) is shared by design and is
 * left alone with a warning. Returns the change made, if any. A failing chmod is logged, not thrown: the
 * datastore still starts, and the log says what stays open.
 */
export function restrictDir(dir: string, log: Logger): ModeChange | undefined {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const { mode } = statSync(dir);
  if ((mode & 0o077) === 0) return undefined;
  if ((mode & 0o1002) === 0o1002) {
    log.warn(
      { path: dir, mode: octal(mode) },
      'datastore directory is a shared sticky directory; its mode is left as it is',
    );
    return undefined;
  }
  return chmodTo(dir, mode, PRIVATE_DIR_MODE, log);
}

/**
 * The SQLite database `file` and its `-wal` and `-shm` companions readable and writable by their owner only.
 * A missing database file is created empty with mode 0600 first, so SQLite, which gives the `-wal` and `-shm`
 * files the database file's mode, creates them 0600 too; existing files with a wider mode are chmod-ed.
 */
export function restrictDatabaseFiles(file: string, log: Logger): ModeChange[] {
  try {
    closeSync(openSync(file, 'wx', PRIVATE_FILE_MODE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const changes: ModeChange[] = [];
  for (const path of [file, `${file}-wal`, `${file}-shm`]) {
    let mode: number;
    try {
      mode = statSync(path).mode;
    } catch {
      continue; // not created yet
    }
    if ((mode & 0o177) === 0) continue;
    const change = chmodTo(path, mode, PRIVATE_FILE_MODE, log);
    if (change !== undefined) changes.push(change);
  }
  return changes;
}

function chmodTo(path: string, mode: number, to: number, log: Logger): ModeChange | undefined {
  try {
    chmodSync(path, to);
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code;
    log.warn(
      { path, mode: octal(mode), errno },
      `cannot restrict ${path} to mode ${octal(to)} (${errno}): it stays ${octal(mode)}`,
    );
    return undefined;
  }
  const change = { path, from: octal(mode), to: octal(to) };
  log.info(change, `restricted the mode of ${path} from ${change.from} to ${change.to}`);
  return change;
}
