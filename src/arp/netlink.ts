/**
 * The announcer's view of rtnetlink (the `netlink` package): interfaces and their changes, and the VIP
 * addresses on `lo`. VIPs are added with a label (`lo:vm`, IPv4) and an address protocol (IFA_PROTO, both
 * families, Linux 6.1+) so a restart after a crash finds and removes what an earlier run left. Adds and
 * removes go out in batches (addr-batch.ts); dumps and link changes through the package.
 */
import { createRequire } from 'node:module';
import type { RawNetlinkSocket, RtNetlinkSocket } from 'netlink';
import { VipmeshError } from '../errors.js';
import { type IpAddr, ipAddrFromBytes } from '../util/ip.js';
import {
  AddressBatcher,
  type DatagramSocket,
  encodeAddressRequest,
  IFA_LABEL,
  IFA_PROTO,
  NLM_F_CREATE,
  NLM_F_REPLACE,
  RTM_DELADDR,
  RTM_NEWADDR,
  VIP_LABEL,
  VIP_PROTO,
} from './addr-batch.js';

/*
 * The package's rtnetlink and raw-socket files only, loaded with require. `import ... from 'netlink'` runs
 * node's CommonJS export scanner over the package index and everything it re-exports (nl80211, genl,
 * WireGuard): measured 80-130 ms on node 20 (a loaded 2-core machine), against 20-60 ms for the files
 * the announcer uses.
 */
const require = createRequire(import.meta.url);
const rtnetlink = () => require('netlink/dist/rt/rt') as Pick<typeof import('netlink'), 'createRtNetlink'>;
const rawNetlink = () => require('netlink/dist/raw') as Pick<typeof import('netlink'), 'RawNetlinkSocket'>;

/** One interface as the announcer needs it. */
export interface LinkInfo {
  index: number;
  name: string;
  mac: Buffer;
  up: boolean;
  broadcast: boolean;
  noarp: boolean;
  loopback: boolean;
  /** Enslaved to a bridge or bond (IFLA_MASTER set, or IFF_SLAVE). */
  member: boolean;
}

/** Interfaces and a change signal (links appearing, vanishing, changing MAC or state). */
export interface LinkSource {
  list(): Promise<LinkInfo[]>;
  /** Call `onChange` (possibly several times per change) whenever a link changes. */
  subscribe(onChange: () => void): void;
  close(): void;
}

/** The VIP addresses this program put on `lo`. */
export interface AddressTable {
  /** Add `ip` as a /32 or /128 on lo; an existing one is fine. */
  add(ip: IpAddr): Promise<void>;
  /** Remove `ip` from lo; an absent one is fine. */
  remove(ip: IpAddr): Promise<void>;
  /** Every address on lo carrying our label or protocol (left by this or an earlier run). */
  listOurs(): Promise<IpAddr[]>;
}

const RTM_GETADDR = 22;
const NLM_F_DUMP = 0x300;
/** A kernel answers in microseconds; a request unanswered for 5 s is lost, not slow. */
const REQUEST_TIMEOUT_MS = 5000;
/** NETLINK_ROUTE. */
const ROUTE = 0;

/** The errno name in a `netlink` package error ("Request rejected: EEXIST"), kept as `.code`. */
function netlinkErrno(err: unknown): string | undefined {
  const m = /Request rejected: (E[A-Z0-9]+)/.exec((err as Error)?.message ?? '');
  return m?.[1];
}

function addressError(err: unknown, op: string, ip: IpAddr): VipmeshError {
  const errno = netlinkErrno(err);
  if (errno !== undefined && err instanceof Error) Object.assign(err, { code: errno });
  const details = { vip: ip.text, iface: 'lo', errno };
  if (errno === 'EPERM' || errno === 'EACCES') {
    return new VipmeshError(
      'VIPMESH_ARP_PERMISSION',
      `${op} ${ip.text} on lo needs CAP_NET_ADMIN (${errno}); run as root or grant the capability`,
      { cause: err, details },
    );
  }
  return new VipmeshError(
    'VIPMESH_ARP_ADDRESS',
    `${op} ${ip.text} on lo failed: ${(err as Error)?.message}`,
    { cause: err, details },
  );
}

/** Walk rtattrs: yields [type, payload]. */
function* attrs(buf: Buffer, start: number): Generator<[number, Buffer]> {
  for (let off = start; off + 4 <= buf.length; ) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) return;
    yield [buf.readUInt16LE(off + 2) & 0x3fff, buf.subarray(off + 4, off + len)];
    off += (len + 3) & ~3;
  }
}

/** A raw rtnetlink socket of the package as the batcher's {@link DatagramSocket}. */
function rawDatagrams(): DatagramSocket {
  const raw: RawNetlinkSocket = new (rawNetlink().RawNetlinkSocket)(ROUTE, {
    // Room for a whole datagram's answers, should every request of it fail (see MAX_BATCH).
    recvBufferSize: 1 << 20,
    sendBufferSize: 1 << 20,
  });
  raw.unref();
  return {
    send: (parts, cb) => raw.send(parts, {}, (err) => cb(err)),
    onMessage: (fn) => raw.on('message', (buf, rinfo) => fn(buf, rinfo.port)),
    onError: (fn) => raw.on('error', (err: Error & { code?: string }) => fn(err.code ?? 'EIO')),
    ref: (on) => (on ? raw.ref() : raw.unref()),
    close: () => raw.close(),
  };
}

/**
 * LinkSource and AddressTable over rtnetlink: one socket for dumps, one for link events, one for the
 * batched address requests (each made when not given; tests pass fakes).
 */
export class NetlinkTables implements LinkSource, AddressTable {
  readonly #nl: RtNetlinkSocket;
  readonly #events: RtNetlinkSocket;
  readonly #requests: AddressBatcher;
  #loIndex: number | undefined;
  #dumps: Promise<unknown> = Promise.resolve();

  constructor(
    nl: RtNetlinkSocket = rtnetlink().createRtNetlink(),
    events: RtNetlinkSocket = rtnetlink().createRtNetlink(),
    requests: DatagramSocket = rawDatagrams(),
  ) {
    this.#nl = nl;
    this.#events = events;
    this.#requests = new AddressBatcher(requests, { timeoutMs: REQUEST_TIMEOUT_MS });
    // Room for a full link dump.
    nl.socket.setRecvBufferSize(4 << 20);
  }

  /** Run dumps one at a time: the kernel runs a single dump per netlink socket. */
  #dump<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#dumps.then(fn, fn);
    this.#dumps = next.catch(() => undefined);
    return next;
  }

  async list(): Promise<LinkInfo[]> {
    const links = await this.#dump(() =>
      this.#nl.getLinks(undefined, undefined, { timeout: REQUEST_TIMEOUT_MS }),
    );
    return links.map((l) => {
      const f = l.data.flags ?? {};
      const info: LinkInfo = {
        index: l.data.index!,
        name: l.attrs.ifname ?? `if${l.data.index}`,
        mac: l.attrs.address ?? Buffer.alloc(0),
        up: f.up === true,
        broadcast: f.broadcast === true,
        noarp: f.noarp === true,
        loopback: f.loopback === true,
        member: l.attrs.master !== undefined || f.slave === true,
      };
      if (info.loopback) this.#loIndex = info.index;
      return info;
    });
  }

  subscribe(onChange: () => void): void {
    this.#events.addMembership('LINK');
    this.#events.on('message', () => onChange());
  }

  async #lo(): Promise<number> {
    if (this.#loIndex === undefined) await this.list();
    if (this.#loIndex === undefined) {
      throw new VipmeshError('VIPMESH_ARP_NO_INTERFACE', 'interface lo does not exist', {
        details: { iface: 'lo' },
      });
    }
    return this.#loIndex;
  }

  async add(ip: IpAddr): Promise<void> {
    const index = await this.#lo();
    try {
      await this.#requests.request((seq) =>
        encodeAddressRequest(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, seq, ip, index),
      );
    } catch (err) {
      if (netlinkErrno(err) === 'EEXIST') return;
      throw addressError(err, 'adding', ip);
    }
  }

  async remove(ip: IpAddr): Promise<void> {
    const index = await this.#lo();
    try {
      await this.#requests.request((seq) => encodeAddressRequest(RTM_DELADDR, 0, seq, ip, index));
    } catch (err) {
      const errno = netlinkErrno(err);
      if (errno === 'EADDRNOTAVAIL' || errno === 'ENOENT' || errno === 'ESRCH') return;
      throw addressError(err, 'removing', ip);
    }
  }

  async listOurs(): Promise<IpAddr[]> {
    const lo = await this.#lo();
    // A raw dump: the package's parser drops attributes it does not know, IFA_PROTO among them.
    const [msgs] = await this.#dump(() =>
      this.#nl.socket.request(RTM_GETADDR, [Buffer.alloc(8)], {
        flags: NLM_F_DUMP,
        timeout: REQUEST_TIMEOUT_MS,
      }),
    );
    const out: IpAddr[] = [];
    for (const m of msgs) {
      const d = m.data;
      if (d.length < 8 || d.readUInt32LE(4) !== lo) continue;
      let ours = false;
      let addr: Buffer | undefined;
      for (const [type, payload] of attrs(d, 8)) {
        if (type === IFA_PROTO && payload[0] === VIP_PROTO) ours = true;
        if (type === IFA_LABEL && payload.toString('latin1').replace(/\0.*$/, '') === VIP_LABEL) ours = true;
        if (type === 2 || (type === 1 && addr === undefined)) addr = payload;
      }
      const ip = addr === undefined ? undefined : ipAddrFromBytes(addr);
      if (ours && ip !== undefined) out.push(ip);
    }
    return out;
  }

  close(): void {
    this.#requests.close();
    this.#nl.socket.close();
    this.#events.socket.close();
  }
}
