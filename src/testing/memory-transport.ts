import type { FrameTransport, Session } from '../tunnel/session.js';

/** One end of an in-memory frame pipe (wire code is tested over stand-in transports, no sockets). */
export interface MemoryEnd extends FrameTransport {
  /** Attach the session that receives this end's frames. */
  bind(session: Session): void;
  /** While true, frames sent from either end are dropped (a pulled cable). */
  cut: boolean;
  /** When true, frames sent from this end are also kept in `sent` (for assertions). */
  record: boolean;
  readonly sent: Buffer[];
}

/**
 * Two connected transports. Frames are delivered asynchronously (next microtask batch), in order; closing
 * one end tells the other end's session after a tick, as a TCP close would.
 */
export function memoryPair(): [MemoryEnd, MemoryEnd] {
  const sessions: Array<Session | undefined> = [undefined, undefined];
  const state = { cut: false, closed: false };
  const make = (me: 0 | 1): MemoryEnd => {
    const other = (1 - me) as 0 | 1;
    const sent: Buffer[] = [];
    return {
      sent,
      record: false,
      get cut() {
        return state.cut;
      },
      set cut(v: boolean) {
        state.cut = v;
      },
      bind(s) {
        sessions[me] = s;
      },
      send(frame) {
        if (state.closed) return;
        if (this.record) sent.push(frame);
        if (state.cut) return;
        queueMicrotask(() => {
          if (!state.closed) sessions[other]?.receive(frame);
        });
      },
      close(_code, reason) {
        if (state.closed) return;
        state.closed = true;
        setImmediate(() => sessions[other]?.transportClosed(`closed by peer: ${reason}`));
      },
    };
  };
  return [make(0), make(1)];
}
