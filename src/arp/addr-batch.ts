/**
 * VIP addresses on lo in batches: RTM_NEWADDR / RTM_DELADDR requests made in the same turn of the event
 * loop go out together in one sendmsg, each with its own sequence number, and each caller learns the
 * kernel's answer to its own message. The `netlink` package's request API sends one message per sendmsg
 * and waits for its ack; for 1,000 VIPs that was most of the time from start to the first gratuitous round.
 *
 * Layouts (include/uapi/linux/netlink.h, if_addr.h): nlmsghdr {u32 len, u16 type, u16 flags, u32 seq,
 * u32 pid}; ifaddrmsg {u8 family, prefixlen, flags, scope; u32 index}; rtattr {u16 len, u16 type} + data
 * padded to 4; nlmsgerr {s32 error, nlmsghdr of the request}. Host byte order (little-endian here, as the
 * rest of this module reads netlink).
 */
import { getSystemErrorName } from 'node:util';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import type { IpAddr } from '../util/ip.js';

export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_CREATE = 0x400;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
export const IFA_LABEL = 3;
export const IFA_PROTO = 11;
const AF_INET = 2;
const AF_INET6 = 10;

/** The IFA_LABEL of our IPv4 VIPs on lo. */
export const VIP_LABEL = 'lo:vm';
/** The IFA_PROTO value marking our VIPs (an arbitrary value outside the kernel's 0-3). */
export const VIP_PROTO = 0x76;

/**
 * Most messages in one datagram. The kernel answers a failed message with its error and a copy of the
 * message (under 1 KiB of receive buffer each); 256 such answers fit the 416 KiB a socket gets with Linux's
 * default rmem_max, so even a datagram whose every request fails loses no answer. 256 requests are at most
 * 19 KiB, far under the 208 KiB one sendmsg may carry by default (wmem_default).
 */
export const MAX_BATCH = 256;

const align4 = (n: number) => (n + 3) & ~3;

function attr(buf: Buffer, at: number, type: number, data: Uint8Array): number {
  buf.writeUInt16LE(4 + data.length, at);
  buf.writeUInt16LE(type, at + 2);
  buf.set(data, at + 4);
  return at + align4(4 + data.length);
}

const LABEL = Buffer.from(`${VIP_LABEL}\0`, 'latin1');
const PROTO = Buffer.from([VIP_PROTO]);

/**
 * One request for `ip` as a /32 or /128 on interface `index`: IFA_LOCAL and IFA_ADDRESS, IFA_LABEL `lo:vm`
 * (IPv4) and IFA_PROTO 0x76, so a later run finds it (the attributes, in the order, that the package's
 * `newAddress` sent). NLM_F_REQUEST | NLM_F_ACK are set besides `flags`.
 */
export function encodeAddressRequest(
  type: number,
  flags: number,
  seq: number,
  ip: IpAddr,
  index: number,
): Buffer {
  const v4 = ip.family === 4;
  const len = 16 + 8 + 2 * align4(4 + ip.bytes.length) + (v4 ? align4(4 + LABEL.length) : 0) + 8;
  const buf = Buffer.alloc(len);
  buf.writeUInt32LE(len, 0);
  buf.writeUInt16LE(type, 4);
  buf.writeUInt16LE(flags | NLM_F_REQUEST | NLM_F_ACK, 6);
  buf.writeUInt32LE(seq >>> 0, 8);
  buf[16] = v4 ? AF_INET : AF_INET6;
  buf[17] = v4 ? 32 : 128;
  buf.writeUInt32LE(index, 20);
  let at = attr(buf, 24, IFA_LOCAL, ip.bytes);
  at = attr(buf, at, IFA_ADDRESS, ip.bytes);
  if (v4) at = attr(buf, at, IFA_LABEL, LABEL);
  attr(buf, at, IFA_PROTO, PROTO);
  return buf;
}

/** The NLMSG_ERROR answers in a datagram: the request's sequence number and errno (0 = success). */
export function decodeAcks(buf: Buffer): Array<{ seq: number; errno: number }> {
  const out: Array<{ seq: number; errno: number }> = [];
  for (let at = 0; at + 16 <= buf.length; ) {
    const len = buf.readUInt32LE(at);
    if (len < 16 || at + len > buf.length) break;
    if (buf.readUInt16LE(at + 4) === NLMSG_ERROR && len >= 20) {
      out.push({ seq: buf.readUInt32LE(at + 8), errno: -buf.readInt32LE(at + 16) });
    }
    at += align4(len);
  }
  return out;
}

/** The datagram socket underneath (a raw rtnetlink socket of the `netlink` package; a fake in tests). */
export interface DatagramSocket {
  /** Send the buffers as one datagram; `cb` gets the send error, if any. */
  send(parts: Buffer[], cb: (err?: Error) => void): void;
  /** Every datagram received, with the sender's port (0 = the kernel). */
  onMessage(fn: (buf: Buffer, port: number) => void): void;
  /** A receive error, by errno name: ENOBUFS when answers were dropped. */
  onError(fn: (code: string) => void): void;
  /** Keep the process alive (true) while answers are awaited, or not. */
  ref(on: boolean): void;
  close(): void;
}

/**
 * The error a rejected request gets: the text and `code` the `netlink` package gave ("Request rejected:
 * EEXIST", "Timeout has been reached"), so callers and their messages are as before batching.
 */
function rejected(code: string): Error {
  return Object.assign(new Error(`Request rejected: ${code}`), { code });
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return String(errno);
  }
}

interface Pending {
  msg: Buffer;
  seq: number;
  resolve(): void;
  reject(err: Error): void;
}

/** Options of {@link AddressBatcher}. */
interface AddressBatcherOptions {
  /** Reject the requests of a datagram unanswered for this long (ms); default 5,000. */
  timeoutMs?: number;
  /** Most requests per datagram; default {@link MAX_BATCH}. */
  maxBatch?: number;
  clock?: Clock;
}

/**
 * Sends address requests in batches, one datagram at a time, and settles each request on the kernel's
 * answer to it. The kernel handles the messages of a datagram in order, one by one (a failure does not
 * stop the rest), before sendmsg returns: a datagram's answers are all queued when the next one is sent.
 */
export class AddressBatcher {
  readonly #sock: DatagramSocket;
  readonly #timeoutMs: number;
  readonly #maxBatch: number;
  readonly #clock: Clock;
  #queue: Pending[] = [];
  readonly #inFlight = new Map<number, Pending>();
  #flushScheduled = false;
  #timer: TimerHandle | undefined;
  /** The sequence number of the in-flight datagram's last request, the one that asks for an ack. */
  #last = 0;
  #seq = Math.floor(Math.random() * 0x7fff_0000);
  #closed = false;

  constructor(sock: DatagramSocket, opts: AddressBatcherOptions = {}) {
    this.#sock = sock;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    this.#maxBatch = opts.maxBatch ?? MAX_BATCH;
    this.#clock = opts.clock ?? systemClock;
    sock.onMessage((buf, port) => {
      if (port === 0) this.#receive(buf);
    });
    // Answers were lost: fail what waits now rather than at the timeout.
    sock.onError((code) => this.abortPending(code));
  }

  /** Requests sent or queued and not yet answered. */
  get pending(): number {
    return this.#queue.length + this.#inFlight.size;
  }

  /**
   * Queue one request; `encode(seq)` builds it with that sequence number. Resolves on the kernel's ack,
   * rejects with "Request rejected: <errno>" (`code` the errno name) when the kernel refuses it.
   */
  request(encode: (seq: number) => Buffer): Promise<void> {
    if (this.#closed) return Promise.reject(rejected('EBADF'));
    this.#seq = (this.#seq + 1) >>> 0 || 1;
    const seq = this.#seq;
    const msg = encode(seq);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ msg, seq, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        // setImmediate, not a microtask: requests made from many timer callbacks of one loop turn (VIPs
        // whose probes ended together) join one datagram.
        setImmediate(() => {
          this.#flushScheduled = false;
          this.#flush();
        });
      }
    });
  }

  /** Reject everything sent and queued with `code` (the socket reported an error, e.g. ENOBUFS). */
  abortPending(code: string): void {
    this.#stopTimer();
    const all = [...this.#inFlight.values(), ...this.#queue];
    this.#inFlight.clear();
    this.#queue = [];
    this.#sock.ref(false);
    for (const p of all) p.reject(rejected(code));
  }

  /** Reject everything pending and close the socket. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.abortPending('EBADF');
    this.#sock.close();
  }

  #flush(): void {
    if (this.#inFlight.size > 0 || this.#queue.length === 0 || this.#closed) return;
    const batch = this.#queue.splice(0, this.#maxBatch);
    for (const p of batch) this.#inFlight.set(p.seq, p);
    this.#sock.ref(true);
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      const lost = [...this.#inFlight.values()];
      this.#inFlight.clear();
      for (const p of lost) p.reject(new Error('Timeout has been reached'));
      this.#next();
    }, this.#timeoutMs);
    // Only the last message asks for an ack: the kernel answers a failed message whatever its flags
    // (netlink_rcv_skb acks "if NLM_F_ACK or err"), in order, so when the last one's ack comes every
    // earlier request of the datagram has either failed by now or succeeded. One answer per datagram
    // instead of one per VIP.
    for (const p of batch.slice(0, -1)) p.msg.writeUInt16LE(p.msg.readUInt16LE(6) & ~NLM_F_ACK, 6);
    this.#last = batch.at(-1)!.seq;
    this.#sock.send(
      batch.map((p) => p.msg),
      (err) => {
        if (!err) return;
        // The datagram did not go out: none of its requests will be answered.
        for (const p of batch) {
          if (this.#inFlight.delete(p.seq)) p.reject(err);
        }
        this.#next();
      },
    );
  }

  #receive(buf: Buffer): void {
    for (const { seq, errno } of decodeAcks(buf)) {
      const p = this.#inFlight.get(seq);
      if (p === undefined) continue;
      this.#inFlight.delete(seq);
      if (seq === this.#last) {
        // Everything before it in the datagram and not failed by now has succeeded.
        const done = [...this.#inFlight.values()];
        this.#inFlight.clear();
        for (const q of done) q.resolve();
      }
      if (errno === 0) p.resolve();
      else p.reject(rejected(errnoName(errno)));
    }
    this.#next();
  }

  /** After a datagram is settled: send the next one, or let the process exit when nothing waits. */
  #next(): void {
    if (this.#inFlight.size > 0) return;
    this.#stopTimer();
    if (this.#queue.length > 0) this.#flush();
    else this.#sock.ref(false);
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
