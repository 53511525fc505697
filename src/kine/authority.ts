/**
 * Let clients that send a URL as the HTTP/2 `:authority` reach the gRPC server. etcdctl dials some endpoints
 * as written (`endpoint status`, `defrag`, `endpoint hashkv`, the `--cluster` forms, `unix:///path`), so its
 * authority is `http://127.0.0.1:2379` or `/run/x.sock`; Node's HTTP/2 layer (nghttp2) refuses a `/` in an
 * authority and resets the stream with PROTOCOL_ERROR before grpc-js sees it, and has no option to relax
 * that. etcd (Go) accepts it.
 *
 * So each new connection is read in JavaScript only until its first header block: the authority literals
 * in it that nghttp2 would refuse have each refused byte replaced by `-`, and the bytes are handed to
 * grpc-js, which from then on reads the socket natively (no per-request cost). The value keeps its length,
 * so the client's HPACK table and nghttp2's stay the same size and later requests that refer to the entry
 * get the rewritten value. grpc-go waits for the server's SETTINGS before its first request, and nghttp2 is
 * not started yet, so an empty SETTINGS frame is sent first and the client's ACK of it is taken out.
 *
 * Not handled: a first header block split over CONTINUATION frames, and a URL authority that a client
 * sends literally again later on the same connection (after its HPACK table dropped the entry): those
 * streams are still refused. etcdctl's commands are short and do neither.
 */
import type { Socket } from 'node:net';
import { authorityLiterals, writeInt } from './hpack.js';

/** The client connection preface (RFC 9113 section 3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** An empty SETTINGS frame: the server preface, asking for nothing beyond the defaults. */
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
const FRAME_HEADER = 9;
const TYPE_HEADERS = 1;
const TYPE_SETTINGS = 4;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** SETTINGS_MAX_FRAME_SIZE's initial value: a rewritten frame may not grow past it. */
const MAX_FRAME = 16_384;
/**
 * What a connection may send before its first request is complete. A client's initial flow-control
 * window (64 KiB) bounds the DATA it may send by then; more means it is not an HTTP/2 client.
 */
const MAX_BUFFERED = 256 * 1024;

/** RFC 3986 authority characters, which nghttp2 accepts; every other byte becomes `-`. */
const AUTHORITY_CHAR = /[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]/;

/** `text` with every byte that may not appear in an authority replaced by `-`; null when it needs none. */
export function saneAuthority(text: Buffer): Buffer | null {
  let out: Buffer | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as number;
    if (c < 0x80 && AUTHORITY_CHAR.test(String.fromCharCode(c))) continue;
    out ??= Buffer.from(text);
    out[i] = 0x2d;
  }
  return out;
}

/**
 * One HEADERS frame (header and payload) with its URL authorities made acceptable; null when it needs no
 * change or cannot be changed (no END_HEADERS, malformed, or it would outgrow the frame size).
 */
export function rewriteHeaders(frame: Buffer): Buffer | null {
  const flags = frame[4] as number;
  if ((flags & FLAG_END_HEADERS) === 0) return null;
  const payload = frame.subarray(FRAME_HEADER);
  const pad = (flags & FLAG_PADDED) !== 0 ? (payload[0] ?? 0) : 0;
  const start = ((flags & FLAG_PADDED) !== 0 ? 1 : 0) + ((flags & FLAG_PRIORITY) !== 0 ? 5 : 0);
  const end = payload.length - pad;
  if (end < start) return null;
  const block = payload.subarray(start, end);
  let literals: ReturnType<typeof authorityLiterals>;
  try {
    literals = authorityLiterals(block);
  } catch {
    return null;
  }
  const parts: Buffer[] = [payload.subarray(0, start)];
  let at = 0;
  for (const lit of literals) {
    const sane = saneAuthority(lit.text);
    if (sane === null) continue;
    parts.push(block.subarray(at, lit.start), writeInt(sane.length, 7, 0), sane);
    at = lit.next;
  }
  if (parts.length === 1) return null;
  parts.push(block.subarray(at), payload.subarray(end));
  const body = Buffer.concat(parts);
  if (body.length > MAX_FRAME) return null;
  const head = Buffer.from(frame.subarray(0, FRAME_HEADER));
  head.writeUIntBE(body.length, 0, 3);
  return Buffer.concat([head, body]);
}

/**
 * Read `socket` until its first request's headers (and the ACK of the SETTINGS sent here) have arrived,
 * fix its authority, then give the socket, with those bytes put back, to `serve`. A connection that does
 * not start as HTTP/2 is given over as it is, for the HTTP/2 layer to refuse.
 */
export function admitConnection(socket: Socket, serve: (socket: Socket) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  /** Bytes before `pos` are parsed; `out` holds them as they will be handed on. */
  let pos = 0;
  const out: Buffer[] = [];
  let ackDropped = false;
  let headersSeen = false;
  const onError = () => socket.destroy();
  const handOver = (rest: Buffer) => {
    socket.off('data', onData);
    socket.off('error', onError);
    socket.pause();
    const bytes = Buffer.concat([...out, rest]);
    if (bytes.length > 0) socket.unshift(bytes);
    serve(socket);
  };
  const onData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    if (pos === 0) {
      const n = Math.min(buf.length, PREFACE.length);
      if (!buf.subarray(0, n).equals(PREFACE.subarray(0, n))) return handOver(buf);
      if (buf.length < PREFACE.length) return;
      out.push(buf.subarray(0, PREFACE.length));
      pos = PREFACE.length;
    }
    while (buf.length - pos >= FRAME_HEADER) {
      const len = buf.readUIntBE(pos, 3);
      const end = pos + FRAME_HEADER + len;
      if (end > buf.length) break;
      const type = buf[pos + 3] as number;
      const flags = buf[pos + 4] as number;
      const frame = buf.subarray(pos, end);
      if (type === TYPE_SETTINGS && (flags & FLAG_ACK) !== 0 && !ackDropped) {
        ackDropped = true;
      } else if (type === TYPE_HEADERS && !headersSeen) {
        headersSeen = true;
        out.push(rewriteHeaders(frame) ?? frame);
      } else {
        out.push(frame);
      }
      pos = end;
    }
    if (ackDropped && headersSeen) return handOver(buf.subarray(pos));
    if (buf.length > MAX_BUFFERED) socket.destroy();
  };
  socket.on('error', onError);
  socket.on('data', onData);
  socket.write(EMPTY_SETTINGS);
}
