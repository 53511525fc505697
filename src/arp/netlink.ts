/**
 * The announcer's view of rtnetlink (the `netlink` package): interfaces and their changes, and the VIP
 * addresses on `lo`. VIPs are added with a label (`lo:vm`, IPv4) and an address protocol (IFA_PROTO, both
 * families, Linux 6.1+) so a restart after a crash finds and removes what an earlier run left.
 */
// The package's rtnetlink file, not its index: the index also loads the nl80211 and WireGuard structs
// (docs/memory.md).
import { createRtNetlink, type RtNetlinkSocket } from 'netlink/dist/rt/rt.js';
import { VipmeshError } from '../errors.js';
import { type IpAddr, ipAddrFromBytes } from '../util/ip.js';

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

/** The IFA_LABEL of our IPv4 VIPs on lo. */
const VIP_LABEL = 'lo:vm';
/** The IFA_PROTO value marking our VIPs (an arbitrary value outside the kernel's 0-3). */
const VIP_PROTO = 0x76;
const IFA_LABEL = 3;
const IFA_PROTO = 11;
const RTM_GETADDR = 22;
const NLM_F_DUMP = 0x300;
const NLM_F_CREATE = 0x400;
const NLM_F_REPLACE = 0x100;
const MAX_IN_FLIGHT = 64;
/** A kernel answers in microseconds; a request unanswered for 5 s is lost, not slow. */
const REQUEST_TIMEOUT_MS = 5000;
const AF_INET = 2;
const AF_INET6 = 10;

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

/** LinkSource and AddressTable over one rtnetlink socket. */
export class NetlinkTables implements LinkSource, AddressTable {
  readonly #nl: RtNetlinkSocket;
  readonly #events: RtNetlinkSocket;
  #loIndex: number | undefined;
  #dumps: Promise<unknown> = Promise.resolve();
  #inFlight = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(nl: RtNetlinkSocket = createRtNetlink(), events: RtNetlinkSocket = createRtNetlink()) {
    this.#nl = nl;
    this.#events = events;
    // Room for the acknowledgements of MAX_IN_FLIGHT requests and a full link dump.
    nl.socket.setRecvBufferSize(4 << 20);
  }

  /**
   * At most MAX_IN_FLIGHT address requests at once: a thousand concurrent ones overflow the socket's
   * receive buffer with acknowledgements (ENOBUFS), which the package's native reader cannot survive.
   */
  async #limit<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#inFlight >= MAX_IN_FLIGHT) await new Promise<void>((r) => this.#waiting.push(r));
    this.#inFlight++;
    try {
      return await fn();
    } finally {
      this.#inFlight--;
      this.#waiting.shift()?.();
    }
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

  #msg(ip: IpAddr, index: number) {
    const data = {
      family: ip.family === 4 ? AF_INET : AF_INET6,
      prefixlen: ip.family === 4 ? 32 : 128,
      index,
    };
    const a: { local: Buffer; address: Buffer; label?: string } = { local: ip.bytes, address: ip.bytes };
    if (ip.family === 4) a.label = VIP_LABEL;
    // IFA_PROTO is not in the package's attribute table; it sends a hidden `__unparsed` list verbatim.
    Object.defineProperty(a, '__unparsed', {
      value: [[IFA_PROTO, Buffer.from([VIP_PROTO])]],
      enumerable: false,
    });
    return { data, attrs: a };
  }

  async add(ip: IpAddr): Promise<void> {
    const { data, attrs: a } = this.#msg(ip, await this.#lo());
    try {
      await this.#limit(() =>
        this.#nl.newAddress(data, a, { flags: NLM_F_CREATE | NLM_F_REPLACE, timeout: REQUEST_TIMEOUT_MS }),
      );
    } catch (err) {
      if (netlinkErrno(err) === 'EEXIST') return;
      throw addressError(err, 'adding', ip);
    }
  }

  async remove(ip: IpAddr): Promise<void> {
    const { data, attrs: a } = this.#msg(ip, await this.#lo());
    try {
      await this.#limit(() => this.#nl.delAddress(data, a, { timeout: REQUEST_TIMEOUT_MS }));
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
    this.#nl.socket.close();
    this.#events.socket.close();
  }
}
