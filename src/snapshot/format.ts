import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { VipmeshError } from '../errors.js';

/** What a snapshot file holds: the embedded datastore's SQLite database, or a real etcd's bbolt database. */
export type SnapshotKind = 'sqlite' | 'bbolt';

/** A checked snapshot file. */
export interface SnapshotFile {
  file: string;
  kind: SnapshotKind;
  /** Bytes of the database itself (the file less its SHA-256 trailer, when it has one). */
  dataBytes: number;
  /** True when the file ends in etcd's SHA-256 trailer (and it matched). */
  checksummed: boolean;
}

/** etcd appends the SHA-256 of the stream to a snapshot (`etcdctl snapshot save` keeps it). */
export const TRAILER_BYTES = 32;
/** Database files are whole pages, pages a multiple of 512 bytes (SQLite and bbolt alike). */
const PAGE_MULTIPLE = 512;
const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');
/** bbolt's meta page: a 16-byte page header, then the magic (little-endian). */
const BBOLT_MAGIC = 0xed0cdaed;
const BBOLT_MAGIC_OFFSET = 16;
const READ_CHUNK = 1 << 20;

function bad(file: string, why: string): VipmeshError {
  return new VipmeshError('VIPMESH_SNAPSHOT_INVALID', `snapshot ${file}: ${why}`, { details: { file } });
}

/** Read `length` bytes at `position` of an open file (fewer at its end). */
function readAt(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.alloc(length);
  const n = readSync(fd, buf, 0, length, position);
  return buf.subarray(0, n);
}

/**
 * Check a snapshot file before anything is changed with it: it must be a SQLite or bbolt database of whole
 * pages, and when it carries etcd's SHA-256 trailer (every file `vipmesh snapshot save` and `etcdctl
 * snapshot save` write) the hash must match. A SQLite file must also hold as many pages as its header says,
 * so a file cut at a page boundary is refused too. Throws `VIPMESH_SNAPSHOT_INVALID` naming the file and
 * what is wrong.
 */
export function checkSnapshotFile(file: string): SnapshotFile {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw bad(file, 'not a regular file');
    size = st.size;
  } catch (err) {
    if (err instanceof VipmeshError) throw err;
    throw new VipmeshError('VIPMESH_SNAPSHOT_INVALID', `snapshot ${file}: ${(err as Error).message}`, {
      cause: err,
      details: { file },
    });
  }
  const checksummed = size % PAGE_MULTIPLE === TRAILER_BYTES;
  if (!checksummed && size % PAGE_MULTIPLE !== 0) {
    throw bad(
      file,
      `${size} bytes is not whole database pages, with or without a SHA-256 trailer: truncated?`,
    );
  }
  const dataBytes = checksummed ? size - TRAILER_BYTES : size;
  if (dataBytes === 0) throw bad(file, 'empty');
  const fd = openSync(file, 'r');
  try {
    const head = readAt(fd, 100, 0);
    const kind = kindOf(head);
    if (kind === undefined) throw bad(file, 'neither a SQLite database nor an etcd (bbolt) snapshot');
    if (checksummed) {
      const sha = createHash('sha256');
      for (let pos = 0; pos < dataBytes; pos += READ_CHUNK) {
        sha.update(readAt(fd, Math.min(READ_CHUNK, dataBytes - pos), pos));
      }
      const want = readAt(fd, TRAILER_BYTES, dataBytes);
      if (!sha.digest().equals(want)) {
        throw bad(file, 'its SHA-256 trailer does not match its content (damaged or truncated)');
      }
    }
    if (kind === 'sqlite') {
      const expected = sqliteBytes(head);
      if (expected !== undefined && expected !== dataBytes) {
        throw bad(
          file,
          `the SQLite header counts ${expected} bytes of pages but the file holds ${dataBytes}: truncated?`,
        );
      }
    }
    return { file, kind, dataBytes, checksummed };
  } finally {
    closeSync(fd);
  }
}

function kindOf(head: Buffer): SnapshotKind | undefined {
  if (head.length >= SQLITE_MAGIC.length && head.subarray(0, SQLITE_MAGIC.length).equals(SQLITE_MAGIC)) {
    return 'sqlite';
  }
  if (head.length >= BBOLT_MAGIC_OFFSET + 4 && head.readUInt32LE(BBOLT_MAGIC_OFFSET) === BBOLT_MAGIC) {
    return 'bbolt';
  }
  return undefined;
}

/**
 * The database size the SQLite header claims (page size x "in-header database size"), or undefined when
 * the header's count is not valid (older writers; SQLite then uses the file size itself).
 */
function sqliteBytes(head: Buffer): number | undefined {
  if (head.length < 100) return undefined;
  const raw = head.readUInt16BE(16);
  const pageSize = raw === 1 ? 65536 : raw;
  const pages = head.readUInt32BE(28);
  // The count is valid only when the change counter (24) equals "version-valid-for" (92).
  if (pages === 0 || head.readUInt32BE(24) !== head.readUInt32BE(92)) return undefined;
  return pageSize * pages;
}
