import { Duplex } from 'node:stream';
import { VipmeshError } from '../errors.js';
import { encodeData, encodeEmpty, encodeError, encodeU32, FrameType } from './codec.js';

/**
 * Largest DATA body: 64 KiB, what a TCP socket hands `read()` at a time here, so a chunk from a local socket
 * goes out as one frame. A bigger frame only helps writes bigger than that, and holds the connection longer
 * while other streams' frames wait (50 ms for 64 KiB on a 10 Mbit/s link). An A/B with 128 and 256 KiB in
 * bench/tunnel.ts stayed within this shared machine's run-to-run noise (the bench writes 64 KiB chunks).
 */
const MAX_DATA = 64 * 1024;

/** What a stream needs from its session. */
export interface StreamOwner {
  /** Put one frame on the wire. */
  send(frame: Buffer): void;
  /** The stream is done (both FINs exchanged, or aborted): forget its id. */
  release(stream: TunnelStream): void;
}

interface PendingWrite {
  buf: Buffer;
  off: number;
  cb: (err?: Error | null) => void;
}

/**
 * One stream of a session: a Duplex whose writes never exceed the credit the peer granted and whose reads
 * return credit to the peer as the reader consumes them. Memory per stream is bounded by the receive window
 * (the peer can have at most that much unread data in flight); a reader that stops stalls only its stream.
 * `connect` is emitted when the far side accepted the stream.
 */
export class TunnelStream extends Duplex {
  /** Stream id (odd: opened by the agent, even: opened by the server). */
  readonly id: number;
  /** `tcp:host:port` this stream is connected to. */
  readonly target: string;
  readonly #owner: StreamOwner;
  readonly #window: number;
  #opened: boolean;
  #sendCredit: number;
  #pending: PendingWrite | null = null;
  #finalCb: ((err?: Error | null) => void) | null = null;
  #received = 0;
  #credited = 0;
  #localFin = false;
  #remoteFin = false;
  #released = false;
  #quiet = false;

  constructor(owner: StreamOwner, id: number, target: string, opts: { window: number; sendCredit?: number }) {
    super({ allowHalfOpen: true, readableHighWaterMark: opts.window, writableHighWaterMark: MAX_DATA });
    this.#owner = owner;
    this.id = id;
    this.target = target;
    this.#window = opts.window;
    this.#opened = opts.sendCredit !== undefined;
    this.#sendCredit = opts.sendCredit ?? 0;
  }

  /** True once the stream is released without both sides having finished cleanly. */
  get aborted(): boolean {
    return this.destroyed && !(this.#localFin && this.#remoteFin);
  }

  /** Bytes the peer may still send before it needs more credit. */
  get peerCredit(): number {
    return this.#window + this.#credited - this.#received;
  }

  /** Bytes this side may still send. */
  get sendCredit(): number {
    return this.#sendCredit;
  }

  /** @internal The far side accepted (dialer side), granting `window` bytes. */
  onOpenAck(window: number): void {
    if (this.#opened) return;
    this.#opened = true;
    this.#sendCredit += window;
    this.emit('connect');
    this.#flush();
  }

  /** @internal DATA arrived; false when the peer overran its credit (a protocol violation). */
  onData(data: Buffer): boolean {
    if (this.#remoteFin || this.destroyed) return true;
    this.#received += data.length;
    if (this.#received > this.#window + this.#credited) return false;
    // No copy: the websocket hands each message over as its own buffer (at most one socket read), so a
    // slow reader pins no more than the bytes it has not read.
    this.push(data);
    this.#giveCredit();
    return true;
  }

  /** @internal The peer granted `n` more bytes. */
  onCredit(n: number): void {
    this.#sendCredit += n;
    this.#flush();
  }

  /** @internal The peer will send no more. */
  onFin(): void {
    if (this.#remoteFin) return;
    this.#remoteFin = true;
    this.push(null);
    this.#maybeRelease();
  }

  /** @internal The peer aborted the stream (`code` set for an error) or the session ended: no frame back. */
  abort(err: Error | null): void {
    this.#quiet = true;
    this.#release();
    this.destroy(err ?? undefined);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#pending = { buf: chunk, off: 0, cb };
    this.#flush();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#finalCb = cb;
    this.#flush();
  }

  override _read(): void {
    // Nothing to start: the peer sends as far as its credit allows. Credit goes back from read(), below.
  }

  /**
   * Give back what the reader has taken out of the buffer. Node calls `_read()` before it removes the data
   * it returns, so credit is computed after `read()` (every consumer, pipe and async iterator included,
   * goes through it) and after a push that a flowing reader took at once. Credit goes back in batches of a
   * quarter window (a CREDIT per DATA would double the frame count); a peer that has run out of credit is
   * always owed at least that much once the reader has drained a quarter of the buffer, so it never stalls.
   */
  override read(size?: number): string | Buffer {
    // Typed like NodeJS.ReadableStream.read (which, like Node itself, also returns null when empty).
    const chunk = super.read(size) as string | Buffer;
    this.#giveCredit();
    return chunk;
  }

  #giveCredit(): void {
    const consumed = this.#received - this.readableLength - this.#credited;
    if (consumed >= this.#window / 4 && !this.#remoteFin && !this.#released) {
      this.#credited += consumed;
      this.#owner.send(encodeU32(FrameType.CREDIT, this.id, consumed));
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.#released && !this.#quiet) {
      if (err === null) this.#owner.send(encodeEmpty(FrameType.CLOSE, this.id));
      else {
        const code = err instanceof VipmeshError ? err.code : 'VIPMESH_TUNNEL_STREAM_RESET';
        this.#owner.send(encodeError(this.id, code, err.message));
      }
    }
    this.#release();
    const p = this.#pending;
    this.#pending = null;
    p?.cb(err ?? new VipmeshError('VIPMESH_TUNNEL_STREAM_RESET', 'stream closed'));
    cb(err);
  }

  #flush(): void {
    if (!this.#opened || this.destroyed) return;
    const p = this.#pending;
    if (p !== null) {
      while (p.off < p.buf.length && this.#sendCredit > 0) {
        const n = Math.min(p.buf.length - p.off, this.#sendCredit, MAX_DATA);
        this.#owner.send(encodeData(this.id, p.buf.subarray(p.off, p.off + n)));
        p.off += n;
        this.#sendCredit -= n;
      }
      if (p.off < p.buf.length) return;
      this.#pending = null;
      p.cb();
    }
    const fin = this.#finalCb;
    if (fin !== null) {
      this.#finalCb = null;
      this.#localFin = true;
      this.#owner.send(encodeEmpty(FrameType.FIN, this.id));
      this.#maybeRelease();
      fin();
    }
  }

  #maybeRelease(): void {
    if (this.#localFin && this.#remoteFin) this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#owner.release(this);
  }
}
