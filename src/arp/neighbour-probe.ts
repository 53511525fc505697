/**
 * While the agent cannot reach its server, ask for the server's link-layer address every 100 ms (an ARP
 * request, or an IPv6 Neighbor Solicitation), so that the kernel learns it again within 100 ms of the link
 * coming back instead of at its own pace.
 *
 * Why: after a cut of more than 3 s the kernel has given up resolving the server (its neighbour entry is
 * INCOMPLETE or FAILED) and asks again only once per `retrans_time_ms`, 1 s by default. Until it has an
 * answer every SYN waits in the entry's queue, so the agent came back 0.2-1 s after the link (bench/tunnel.ts,
 * kernel defaults). The kernel takes an ARP reply or solicited NA addressed to it into the entry it already
 * has for the sender, whoever asked, and then sends the queued SYN at once.
 */
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os';
import type { Clock, TimerHandle } from '../clock.js';
import { errnoOf, VipmeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { contains, networkOf } from '../util/cidr.js';
import { type IpFamily, parseIp, parseIpBytes } from '../util/ip.js';
import { DROP_ALL, encodeFilter } from './bpf.js';
import { arpRequest } from './codec.js';
import { neighbourSolicitation } from './ndp.js';
import { type FrameSocket, PacketSocket } from './packet-socket.js';

/** One server on a local link: where its probe goes out and what it says. */
export interface ProbeTarget {
  /** The server's address (text, for logs). */
  ip: string;
  /** The interface the server's prefix is on. */
  ifname: string;
  family: IpFamily;
  /** The frame to send: built once per start, sent as is on every tick. */
  frame: Buffer;
}

/** Options of {@link LinkNeighbourProbe}. Defaults in brackets. */
export interface NeighbourProbeOptions {
  /**
   * The targets, looked up on every `start()` and `stop()`. An empty answer keeps the last non-empty one:
   * Node lists only interfaces that are up with a carrier, so a cut interface drops out of the lookup
   * just when it is needed, while `stop()` (the tunnel is back) sees it.
   */
  targets: () => ProbeTarget[];
  /** Open a send-only socket on `ifname` for `family` [an AF_PACKET socket that receives nothing]. */
  open?: (ifname: string, family: IpFamily) => FrameSocket;
  clock: Clock;
  logger: Logger;
  /** Between probes for the first `fastForMs` [100 ms]: the kernel's own pace is 1 s. */
  intervalMs?: number;
  /** Between probes after that [1 s]: a server gone for good costs no more than the kernel's own retries. */
  slowIntervalMs?: number;
  /** How long to probe at `intervalMs` [60 s]. */
  fastForMs?: number;
}

/** Servers probed at most; more are left to the kernel (each costs one frame per tick). */
export const MAX_PROBE_TARGETS = 8;

/** Errors that will not go away by trying again: no CAP_NET_RAW, no addon. */
const GIVE_UP = new Set(['VIPMESH_ARP_PERMISSION', 'VIPMESH_ARP_NATIVE_MISSING']);

/**
 * Probes every target once per tick while started: the tunnel client's `neighbourProbe`, which it runs
 * only while it has no session and nothing answers. Bounded: at most {@link MAX_PROBE_TARGETS} frames per
 * tick (10 ticks a second for a minute, then one), one socket per interface and family, nothing held
 * between starts; nothing at all is sent or open while stopped.
 */
export class LinkNeighbourProbe {
  readonly #o: NeighbourProbeOptions;
  readonly #open: (ifname: string, family: IpFamily) => FrameSocket;
  readonly #sockets = new Map<string, FrameSocket>();
  #targets: ProbeTarget[] = [];
  /** The last non-empty lookup. */
  #known: ProbeTarget[] = [];
  #timer: TimerHandle | undefined;
  #running = false;
  #startedAt = 0;
  #disabled = false;
  /** Frames sent since construction (for tests and logs). */
  sent = 0;

  constructor(o: NeighbourProbeOptions) {
    this.#o = o;
    this.#open = o.open ?? openSendOnly;
  }

  /** True between `start()` and `stop()` when there is something to probe. */
  get running(): boolean {
    return this.#running;
  }

  start(): void {
    if (this.#running || this.#disabled) return;
    this.#lookup();
    this.#targets = this.#known;
    if (this.#targets.length === 0) return;
    this.#running = true;
    this.#startedAt = this.#o.clock.now();
    this.#o.logger.debug(
      { op: 'neighbour-probe', targets: this.#targets.map((t) => `${t.ip}%${t.ifname}`) },
      'probing the server on its link until the tunnel is back',
    );
    this.#tick();
  }

  stop(): void {
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#running = false;
    this.#targets = [];
    for (const s of this.#sockets.values()) s.close();
    this.#sockets.clear();
    if (!this.#disabled) this.#lookup();
  }

  #lookup(): void {
    const fresh = this.#o.targets().slice(0, MAX_PROBE_TARGETS);
    if (fresh.length > 0) this.#known = fresh;
  }

  #tick(): void {
    this.#timer = undefined;
    for (const t of this.#targets) {
      const sock = this.#socket(t);
      if (!this.#running) return; // the socket could not be opened and probing gave up
      if (sock === undefined) continue;
      try {
        sock.send(t.frame);
        this.sent++;
      } catch (err) {
        this.#fail(err, t);
        if (!this.#running) return;
      }
    }
    const fast = this.#o.clock.now() - this.#startedAt < (this.#o.fastForMs ?? 60_000);
    const wait = fast ? (this.#o.intervalMs ?? 100) : (this.#o.slowIntervalMs ?? 1000);
    this.#timer = this.#o.clock.setTimeout(() => this.#tick(), wait);
  }

  #socket(t: ProbeTarget): FrameSocket | undefined {
    const key = `${t.ifname}/${t.family}`;
    const have = this.#sockets.get(key);
    if (have !== undefined) return have;
    try {
      const s = this.#open(t.ifname, t.family);
      this.#sockets.set(key, s);
      return s;
    } catch (err) {
      this.#fail(err, t);
      return undefined;
    }
  }

  /** A socket failed: without the means to probe at all, give up for good; else skip this tick. */
  #fail(err: unknown, t: ProbeTarget): void {
    const code = err instanceof VipmeshError ? err.code : undefined;
    const fields = { op: 'neighbour-probe', iface: t.ifname, ip: t.ip, code, errno: errnoOf(err) };
    if (code !== undefined && GIVE_UP.has(code)) {
      this.#disabled = true;
      this.stop();
      this.#o.logger.info(
        fields,
        `not probing the server's link while disconnected (${(err as Error).message}): reconnects wait for the kernel's ARP/NDP retries`,
      );
      return;
    }
    this.#o.logger.debug(fields, `neighbour probe failed: ${(err as Error)?.message ?? String(err)}`);
  }
}

/** An AF_PACKET socket that sends and receives nothing (the kernel answers the probes, not us). */
function openSendOnly(ifname: string, family: IpFamily): FrameSocket {
  return new PacketSocket(ifname, family === 4 ? 'arp' : 'ndp', () => {}, encodeFilter(DROP_ALL));
}

/**
 * The probe for `host` when it is an IP address inside the prefix of an address of ours on a
 * non-loopback interface (the server is on that link); undefined otherwise: a name, a routed server
 * (its next hop is a router the kernel keeps resolved while traffic flows), loopback, an address of ours.
 */
export function onLinkTarget(
  host: string,
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
): ProbeTarget | undefined {
  const text = host.replace(/^\[(.*)\]$/, '$1');
  const ip = parseIp(text);
  const dst = parseIpBytes(text);
  if (ip === undefined || dst === undefined) return undefined;
  const all = Object.values(interfaces).flatMap((addrs) => addrs ?? []);
  // Our own address (a VIP this node holds on lo, say) needs no resolving.
  if (all.some((a) => parseIp(a.address)?.value === ip.value && parseIp(a.address)?.family === ip.family))
    return undefined;
  for (const [ifname, addrs] of Object.entries(interfaces)) {
    for (const a of addrs ?? []) {
      if (a.internal || a.cidr === null) continue;
      const mine = parseIp(a.address);
      const src = parseIpBytes(a.address);
      if (mine === undefined || src === undefined || mine.family !== ip.family) continue;
      const len = Number(a.cidr.split('/')[1]);
      if (!contains(networkOf(mine, len), ip)) continue;
      const mac = Buffer.from(a.mac.split(':').map((h) => Number.parseInt(h, 16)));
      // Link-local IPv6 prefixes are on every interface: a server there needs a zone, which URLs lack.
      if (mac.length !== 6 || mac.every((b) => b === 0) || (ip.family === 6 && dst[0] === 0xfe)) continue;
      const frame = ip.family === 4 ? arpRequest(mac, src, dst) : neighbourSolicitation(mac, src, dst);
      return { ip: text, ifname, family: ip.family, frame };
    }
  }
  return undefined;
}

/** The on-link targets among `servers` (URLs), each address once. */
export function serverTargets(servers: string[]): ProbeTarget[] {
  const seen = new Set<string>();
  const out: ProbeTarget[] = [];
  const interfaces = networkInterfaces();
  for (const url of servers) {
    let host: string;
    try {
      host = new URL(url).hostname;
    } catch {
      continue;
    }
    const t = onLinkTarget(host, interfaces);
    if (t === undefined || seen.has(t.ip)) continue;
    seen.add(t.ip);
    out.push(t);
  }
  return out;
}
