import type { Int64, KeyValue, RangeResponse, ResponseHeader } from './types.js';

/**
 * A hand-written protobuf encoder for RangeResponse, the one large message the datastore sends: protobufjs
 * spends most of a 10,000-key range building its writer tree (measured 50-90 ms against 8 ms here). Field
 * numbers are etcd's (rpc.proto, kv.proto); zero values are omitted as proto3 does. int64 fields take
 * numbers or decimal strings up to 2^53 and negative values as ten-byte two's complement varints.
 */
export function encodeRangeResponse(res: RangeResponse): Buffer {
  let size = 0;
  const header = res.header !== undefined ? headerSize(res.header) : -1;
  if (header >= 0) size += 1 + varintSize(header) + header;
  const kvSizes = res.kvs.map(kvSize);
  for (const s of kvSizes) size += 1 + varintSize(s) + s;
  if (res.more) size += 2;
  const count = Number(res.count);
  if (count !== 0) size += 1 + int64Size(count);
  const w = new Writer(Buffer.allocUnsafe(size));
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
  return w.buf;
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
