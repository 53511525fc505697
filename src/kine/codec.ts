import type { Int64, KeyValue, RangeResponse, ResponseHeader } from './types.js';

/**
 * Responses up to this size may be encoded into one buffer the encoder keeps (see {@link encodeRangeResponse}).
 * Larger ones get a buffer of their own, so one huge range does not leave its size held for good.
 */
export const KEPT_BUFFER_MAX = 4 * 1024 * 1024;
let kept: Buffer | undefined;

/** Where a response of `size` bytes is written: the kept buffer (grown to fit, up to the cap) or a new one. */
function target(size: number, reuse: boolean): Buffer {
  if (!reuse || size > KEPT_BUFFER_MAX) return Buffer.allocUnsafe(size);
  if (kept === undefined || kept.length < size) {
    let grown = 64 * 1024;
    while (grown < size) grown *= 2;
    kept = Buffer.allocUnsafeSlow(Math.min(grown, KEPT_BUFFER_MAX));
  }
  return kept;
}

/**
 * A hand-written protobuf encoder for RangeResponse, the one large message the datastore sends: protobufjs
 * spends most of a 10,000-key range building its writer tree (measured 50-90 ms against 8 ms here). Field
 * numbers are etcd's (rpc.proto, kv.proto); zero values are omitted as proto3 does. int64 fields take
 * numbers or decimal strings up to 2^53 and negative values as ten-byte two's complement varints.
 *
 * With `reuse`, the bytes are written into a buffer the encoder keeps and the result is a view of it,
 * valid only until the next call with `reuse`: for a caller that copies it at once, as grpc-js does with a
 * response message (into its own buffer behind the 5-byte gRPC prefix). A 10,000-key range is 2.8 MB, and
 * writing it into fresh memory spent most of its encoding time in page faults (10-12 ms and 500-700 minor
 * faults a response, against about 1 ms copying into memory already touched), and its garbage made the
 * collector run.
 */
export function encodeRangeResponse(res: RangeResponse, reuse = false): Buffer {
  let size = 0;
  const header = res.header !== undefined ? headerSize(res.header) : -1;
  if (header >= 0) size += 1 + varintSize(header) + header;
  const kvSizes = res.kvs.map(kvSize);
  for (const s of kvSizes) size += 1 + varintSize(s) + s;
  if (res.more) size += 2;
  const count = Number(res.count);
  if (count !== 0) size += 1 + int64Size(count);
  const w = new Writer(target(size, reuse));
  if (header >= 0) {
    w.tag(1, 2);
    w.varint(header);
    writeHeader(w, res.header!);
  }
  res.kvs.forEach((kv, i) => {
    w.tag(2, 2);
    w.varint(kvSizes[i]!);
    writeKv(w, kv);
  });
  if (res.more) {
    w.tag(3, 0);
    w.varint(1);
  }
  if (count !== 0) {
    w.tag(4, 0);
    w.int64(count);
  }
  if (w.pos !== size) throw new Error(`RangeResponse encoder: wrote ${w.pos} of ${size} bytes`);
  return w.buf.length === size ? w.buf : w.buf.subarray(0, size);
}

class Writer {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }
  varint(n: number): void {
    const b = this.buf;
    while (n >= 0x80) {
      b[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    b[this.pos++] = n;
  }
  int64(n: number): void {
    if (n >= 0) {
      this.varint(n);
      return;
    }
    // Two's complement over 64 bits, as ten varint bytes.
    let v = BigInt.asUintN(64, BigInt(n));
    for (let i = 0; i < 9; i++) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }
  bytes(field: number, b: Buffer): void {
    if (b.length === 0) return;
    this.tag(field, 2);
    this.varint(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }
  num(field: number, v: Int64): void {
    const n = Number(v);
    if (n === 0) return;
    this.tag(field, 0);
    this.int64(n);
  }
}

function varintSize(n: number): number {
  let s = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    s++;
  }
  return s;
}

function int64Size(n: number): number {
  return n < 0 ? 10 : varintSize(n);
}

function numSize(v: Int64): number {
  const n = Number(v);
  return n === 0 ? 0 : 1 + int64Size(n);
}

function bytesSize(b: Buffer): number {
  return b.length === 0 ? 0 : 1 + varintSize(b.length) + b.length;
}

function headerSize(h: ResponseHeader): number {
  return numSize(h.cluster_id) + numSize(h.member_id) + numSize(h.revision) + numSize(h.raft_term);
}

function writeHeader(w: Writer, h: ResponseHeader): void {
  w.num(1, h.cluster_id);
  w.num(2, h.member_id);
  w.num(3, h.revision);
  w.num(4, h.raft_term);
}

function kvSize(kv: KeyValue): number {
  return (
    bytesSize(kv.key) +
    numSize(kv.create_revision) +
    numSize(kv.mod_revision) +
    numSize(kv.version) +
    bytesSize(kv.value) +
    numSize(kv.lease)
  );
}

function writeKv(w: Writer, kv: KeyValue): void {
  w.bytes(1, kv.key);
  w.num(2, kv.create_revision);
  w.num(3, kv.mod_revision);
  w.num(4, kv.version);
  w.bytes(5, kv.value);
  w.num(6, kv.lease);
}
