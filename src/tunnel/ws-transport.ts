import type { Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import { ABANDON_CODE, type FrameTransport, type Session } from './session.js';

/** Close code the session uses for a dead peer: there is no one to wait for, so the socket is cut at once. */
const DEAD_PEER_CODE = 4000;

/** A websocket as a session's transport. Frames that arrive before `bind()` are held, then delivered. */
export class WsTransport implements FrameTransport {
  readonly ws: WebSocket;
  #session: Session | undefined;
  #early: Buffer[] = [];
  #closedReason: string | undefined;
  readonly #socket: Writable | undefined;
  #corked = false;

  /**
   * `socket` is the websocket's underlying (TLS) socket, when the caller has it: frames sent in one tick
   * are then corked into one write: a thousand streams answering at once cost one TLS write and one
   * syscall instead of a thousand.
   */
  constructor(ws: WebSocket, socket?: Writable) {
    this.ws = ws;
    this.#socket = socket;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const s = this.#session;
      if (s === undefined) {
        if (this.#early.length < 64) this.#early.push(data);
        else ws.terminate();
        return;
      }
      if (isBinary) s.receive(data);
      else s.close('protocol error: text message', 1003);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      const why = `websocket closed (${code}${reason.length > 0 ? `: ${reason.toString()}` : ''})`;
      this.#closedReason = why;
      this.#session?.transportClosed(why);
    });
    // Errors are followed by 'close'; the session reports the reason from there.
    ws.on('error', () => {});
  }

  /** Deliver frames to `session` from now on. */
  bind(session: Session): void {
    this.#session = session;
    for (const f of this.#early.splice(0)) session.receive(f);
    if (this.#closedReason !== undefined) session.transportClosed(this.#closedReason);
  }

  readonly reportsWrites = true;

  peerAddress(): string | undefined {
    return (this.#socket as { remoteAddress?: string } | undefined)?.remoteAddress;
  }

  /** What the websocket holds that the OS has not taken yet (its own queue and the socket's buffer). */
  bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  send(frame: Buffer, written?: () => void): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    const sock = this.#socket;
    if (sock !== undefined && !this.#corked) {
      this.#corked = true;
      sock.cork();
      process.nextTick(() => {
        this.#corked = false;
        sock.uncork();
      });
    }
    if (written === undefined) this.ws.send(frame, { binary: true });
    else this.ws.send(frame, { binary: true }, () => written());
  }

  close(code: number, reason: string): void {
    if (code === DEAD_PEER_CODE || code === ABANDON_CODE) {
      this.ws.terminate();
      return;
    }
    // Say goodbye, but never wait long for the peer's answer: a close must not wedge a reconnect.
    // A real timer: it bounds the websocket's own closing handshake, which runs on real time.
    this.ws.close(code, reason.slice(0, 120));
    setTimeout(() => this.ws.terminate(), 1000).unref();
  }
}
