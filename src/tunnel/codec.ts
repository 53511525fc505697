/**
 * The tunnel's frame codec. Every websocket message is one binary frame:
 *
 * ```
 * byte 0      version (1)
 * byte 1      type (FrameType)
 * bytes 2..5  stream id, u32 big-endian (0 for control frames, never 0 for stream frames)
 * bytes 6..   body, by type:
 *   HELLO     JSON                            PING/PONG  8 opaque bytes (the sender's clock, echoed)
 *   REQUEST   u32 id, u16 len, method, JSON   RESPONSE   u32 id, u8 ok(1)/error(0), JSON
 *   PUSH      u16 len, topic, JSON
 *   OPEN      u32 window, target (utf8)       OPEN_ACK   u32 window
 *   DATA      bytes                           FIN, CLOSE (empty)
 *   ERROR     u8 len, code, message (utf8)    CREDIT     u32 bytes
 * ```
 *
 * Decoding is the hot path: it returns a reason instead of throwing, so arbitrary bytes can
 * only ever close the session with that reason.
 */

/** The only header version this build speaks. */
const FRAME_VERSION = 1;
/** Header bytes before the body. */
const HEADER_BYTES = 6;

/** Frame types. Control frames are below 0x20, stream frames from 0x20. */
export const FrameType = {
  HELLO: 0x01,
  PING: 0x02,
  PONG: 0x03,
  REQUEST: 0x10,
  RESPONSE: 0x11,
  PUSH: 0x12,
  OPEN: 0x20,
  OPEN_ACK: 0x21,
  DATA: 0x22,
  FIN: 0x23,
  CLOSE: 0x24,
  ERROR: 0x25,
  CREDIT: 0x26,
} as const;

/** A decoded frame. */
export type Frame =
  | { type: 'hello'; info: unknown }
  | { type: 'ping' | 'pong'; stamp: Buffer }
  | { type: 'request'; id: number; method: string; params: unknown }
  | { type: 'response'; id: number; ok: boolean; body: unknown }
  | { type: 'push'; topic: string; payload: unknown }
  | { type: 'open'; stream: number; window: number; target: string }
  | { type: 'open-ack'; stream: number; window: number }
  | { type: 'data'; stream: number; data: Buffer }
  | { type: 'fin' | 'close'; stream: number }
  | { type: 'error'; stream: number; code: string; message: string }
  | { type: 'credit'; stream: number; bytes: number };

/** Why a frame could not be decoded (the session closes with it). */
type DecodeError = { error: string };

function header(type: number, stream: number, bodyLen: number): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES + bodyLen);
  b[0] = FRAME_VERSION;
  b[1] = type;
  b.writeUInt32BE(stream, 2);
  return b;
}

function json(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v ?? null), 'utf8');
}

/** HELLO: the agent's registration (or the server's welcome). */
export function encodeHello(info: unknown): Buffer {
  const body = json(info);
  const b = header(FrameType.HELLO, 0, body.length);
  body.copy(b, HEADER_BYTES);
  return b;
}

/** PING or PONG with an 8-byte stamp. */
export function encodePing(pong: boolean, stamp: Buffer): Buffer {
  const b = header(pong ? FrameType.PONG : FrameType.PING, 0, 8);
  stamp.copy(b, HEADER_BYTES, 0, 8);
  return b;
}

/** REQUEST `id` for `method`. */
export function encodeRequest(id: number, method: string, params: unknown): Buffer {
  const m = Buffer.from(method, 'utf8');
  const body = json(params);
  const b = header(FrameType.REQUEST, 0, 6 + m.length + body.length);
  b.writeUInt32BE(id, 6);
  b.writeUInt16BE(m.length, 10);
  m.copy(b, 12);
  body.copy(b, 12 + m.length);
  return b;
}

/** RESPONSE to request `id`: the result, or an error body `{code, message}`. */
export function encodeResponse(id: number, ok: boolean, body: unknown): Buffer {
  const j = json(body);
  const b = header(FrameType.RESPONSE, 0, 5 + j.length);
  b.writeUInt32BE(id, 6);
  b[10] = ok ? 1 : 0;
  j.copy(b, 11);
  return b;
}

/** PUSH on `topic`. */
export function encodePush(topic: string, payload: unknown): Buffer {
  const t = Buffer.from(topic, 'utf8');
  const body = json(payload);
  const b = header(FrameType.PUSH, 0, 2 + t.length + body.length);
  b.writeUInt16BE(t.length, 6);
  t.copy(b, 8);
  body.copy(b, 8 + t.length);
  return b;
}

/** OPEN stream `stream` to `target`, granting the peer `window` bytes. */
export function encodeOpen(stream: number, window: number, target: string): Buffer {
  const t = Buffer.from(target, 'utf8');
  const b = header(FrameType.OPEN, stream, 4 + t.length);
  b.writeUInt32BE(window, 6);
  t.copy(b, 10);
  return b;
}

/** OPEN_ACK or CREDIT: a u32 body. */
export function encodeU32(
  type: typeof FrameType.OPEN_ACK | typeof FrameType.CREDIT,
  stream: number,
  n: number,
) {
  const b = header(type, stream, 4);
  b.writeUInt32BE(n, 6);
  return b;
}

/** DATA on `stream`. */
export function encodeData(stream: number, data: Uint8Array): Buffer {
  const b = header(FrameType.DATA, stream, data.length);
  b.set(data, HEADER_BYTES);
  return b;
}

/** FIN (half-close) or CLOSE (abort without error). */
export function encodeEmpty(type: typeof FrameType.FIN | typeof FrameType.CLOSE, stream: number): Buffer {
  return header(type, stream, 0);
}

/** ERROR on `stream`: a stable code and a message (both utf8; code at most 255 bytes). */
export function encodeError(stream: number, code: string, message: string): Buffer {
  const c = Buffer.from(code, 'utf8').subarray(0, 255);
  const m = Buffer.from(message, 'utf8');
  const b = header(FrameType.ERROR, stream, 1 + c.length + m.length);
  b[6] = c.length;
  c.copy(b, 7);
  m.copy(b, 7 + c.length);
  return b;
}

function parseJson(buf: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(buf.toString('utf8')) as unknown };
  } catch {
    return { ok: false };
  }
}

/** Decode one frame, or say why it is not one. Never throws. */
export function decodeFrame(b: Buffer): Frame | DecodeError {
  if (b.length < HEADER_BYTES) return { error: `short frame (${b.length} bytes)` };
  if (b[0] !== FRAME_VERSION) return { error: `unsupported frame version ${b[0]}` };
  const type = b[1]!;
  const stream = b.readUInt32BE(2);
  const body = b.subarray(HEADER_BYTES);
  if (type < 0x20) {
    if (stream !== 0) return { error: `control frame 0x${type.toString(16)} on stream ${stream}` };
    return decodeControl(type, body);
  }
  if (stream === 0) return { error: `stream frame 0x${type.toString(16)} on stream 0` };
  switch (type) {
    case FrameType.OPEN:
      if (body.length < 5) return { error: 'OPEN frame too short' };
      return { type: 'open', stream, window: body.readUInt32BE(0), target: body.toString('utf8', 4) };
    case FrameType.OPEN_ACK:
    case FrameType.CREDIT: {
      if (body.length !== 4) return { error: `frame 0x${type.toString(16)} must carry 4 bytes` };
      const n = body.readUInt32BE(0);
      return type === FrameType.CREDIT
        ? { type: 'credit', stream, bytes: n }
        : { type: 'open-ack', stream, window: n };
    }
    case FrameType.DATA:
      return { type: 'data', stream, data: body };
    case FrameType.FIN:
    case FrameType.CLOSE:
      if (body.length !== 0) return { error: `frame 0x${type.toString(16)} must be empty` };
      return { type: type === FrameType.FIN ? 'fin' : 'close', stream };
    case FrameType.ERROR: {
      if (body.length < 1 || body.length < 1 + body[0]!) return { error: 'ERROR frame too short' };
      const n = body[0]!;
      return {
        type: 'error',
        stream,
        code: body.toString('utf8', 1, 1 + n),
        message: body.toString('utf8', 1 + n),
      };
    }
    default:
      return { error: `unknown frame type 0x${type.toString(16)}` };
  }
}

function decodeControl(type: number, body: Buffer): Frame | DecodeError {
  switch (type) {
    case FrameType.HELLO: {
      const j = parseJson(body);
      return j.ok ? { type: 'hello', info: j.value } : { error: 'HELLO body is not JSON' };
    }
    case FrameType.PING:
    case FrameType.PONG:
      if (body.length !== 8) return { error: 'PING/PONG must carry 8 bytes' };
      return { type: type === FrameType.PING ? 'ping' : 'pong', stamp: body };
    case FrameType.REQUEST: {
      if (body.length < 6) return { error: 'REQUEST frame too short' };
      const len = body.readUInt16BE(4);
      if (body.length < 6 + len) return { error: 'REQUEST method overruns the frame' };
      const j = parseJson(body.subarray(6 + len));
      if (!j.ok) return { error: 'REQUEST params are not JSON' };
      return {
        type: 'request',
        id: body.readUInt32BE(0),
        method: body.toString('utf8', 6, 6 + len),
        params: j.value,
      };
    }
    case FrameType.RESPONSE: {
      if (body.length < 5 || body[4]! > 1) return { error: 'bad RESPONSE frame' };
      const j = parseJson(body.subarray(5));
      if (!j.ok) return { error: 'RESPONSE body is not JSON' };
      return { type: 'response', id: body.readUInt32BE(0), ok: body[4] === 1, body: j.value };
    }
    case FrameType.PUSH: {
      if (body.length < 2) return { error: 'PUSH frame too short' };
      const len = body.readUInt16BE(0);
      if (body.length < 2 + len) return { error: 'PUSH topic overruns the frame' };
      const j = parseJson(body.subarray(2 + len));
      if (!j.ok) return { error: 'PUSH payload is not JSON' };
      return { type: 'push', topic: body.toString('utf8', 2, 2 + len), payload: j.value };
    }
    default:
      return { error: `unknown frame type 0x${type.toString(16)}` };
  }
}
