import type { Row } from './dialect.js';

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum etcd's HashKV uses. */
const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** A running CRC-32C. */
export class Crc32c {
  #crc = 0xffffffff;

  update(buf: Uint8Array): this {
    let c = this.#crc;
    for (let i = 0; i < buf.length; i++) c = CRC32C_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
    this.#crc = c;
    return this;
  }

  digest(): number {
    return (this.#crc ^ 0xffffffff) >>> 0;
  }
}

/** Protobuf varint of a non-negative integer up to 2^53. */
function varint(n: number, out: number[]): void {
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

/**
 * The bytes etcd stores for one change in its key bucket: the key is the revision (8-byte big-endian main,
 * `_`, 8-byte big-endian sub, and `t` for a deletion); the value is the mvccpb.KeyValue in protobuf, zero
 * fields left out, a deletion carrying only its key.
 */
export function etcdRecord(row: Row, sub: number): { key: Buffer; value: Buffer } {
  const tomb = row.deleted !== 0;
  const key = Buffer.alloc(tomb ? 18 : 17);
  key.writeBigUInt64BE(BigInt(row.revision), 0);
  key[8] = 0x5f;
  key.writeBigUInt64BE(BigInt(sub), 9);
  if (tomb) key[17] = 0x74;
  const head: number[] = [];
  const field = (tag: number, bytes: Buffer) => {
    if (bytes.length === 0) return [];
    const h: number[] = [tag];
    varint(bytes.length, h);
    return [Buffer.from(h), bytes];
  };
  const num = (tag: number, n: number) => {
    if (n !== 0) {
      head.push(tag);
      varint(n, head);
    }
  };
  const parts: Buffer[] = [...field(0x0a, row.name)];
  if (!tomb) {
    num(0x10, row.create_revision);
    num(0x18, row.revision);
    num(0x20, row.version);
    parts.push(Buffer.from(head));
    parts.push(...field(0x2a, row.value ?? Buffer.alloc(0)));
    const tail: number[] = [];
    if (row.lease !== 0) {
      tail.push(0x30);
      varint(row.lease, tail);
    }
    parts.push(Buffer.from(tail));
  }
  return { key, value: Buffer.concat(parts) };
}

/**
 * etcd's HashKV over the log: CRC-32C of the bucket name `key` and then, in revision order, every change at or
 * below `rev` that etcd would still hold after compacting at `compactRev`: all changes above `compactRev`,
 * and below it each key's newest change at or below `rev` when that is a put (when no key has one, each
 * key's newest put at or below `compactRev`, the changes etcd's compaction leaves). `rows` is read twice.
 *
 * The sub-revision (a change's place within its revision) is counted among the changes hashed, so the hash
 * does not depend on how far the background deletion of compacted rows has got. It equals etcd's except
 * for a revision at or below `compactRev` that changed several keys and kept a later change but not an
 * earlier one: etcd keeps the original sub-revision there.
 */
export function hashKv(rows: () => Iterable<Row>, rev: number, compactRev: number): number {
  // Per key: its newest row at or below rev, and at or below compactRev.
  const atRev = new Map<string, Row>();
  const atCompact = new Map<string, Row>();
  for (const row of rows()) {
    if (row.revision > rev) break;
    const name = row.name.toString('latin1');
    atRev.set(name, row);
    if (row.revision <= compactRev) atCompact.set(name, row);
  }
  const keep = new Set<number>();
  for (const row of atRev.values()) if (row.deleted === 0 && row.revision <= compactRev) keep.add(row.id);
  // etcd skips nothing below the compact revision when no key is live at rev.
  const anyLive = [...atRev.values()].some((r) => r.deleted === 0);
  if (!anyLive) for (const row of atCompact.values()) if (row.deleted === 0) keep.add(row.id);
  const crc = new Crc32c().update(Buffer.from('key'));
  let lastRev = -1;
  let sub = 0;
  for (const row of rows()) {
    if (row.revision > rev) break;
    if (row.revision <= compactRev && !keep.has(row.id)) continue;
    sub = row.revision === lastRev ? sub + 1 : 0;
    lastRev = row.revision;
    const { key, value } = etcdRecord(row, sub);
    crc.update(key).update(value);
  }
  return crc.digest();
}
