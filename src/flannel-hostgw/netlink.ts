/**
 * The netlink layer: the only file of this module that touches the `netlink` package.
 * It speaks in canonical text (`198.18.1.0/24`, `198.51.100.12`) and keeps the kernel's errno on every
 * error it raises (the package reports only "Request rejected: EEXIST"; we parse the name back out).
 */
import { createRequire } from 'node:module';
import type { RtNetlinkSocket, rt } from 'netlink';
import { VipmeshError } from '../errors.js';
import { formatCidr } from '../util/cidr.js';
import { formatIp, type Ip, type IpFamily, ipFromBytes, ipToBytes, parseIp } from '../util/ip.js';
import { parseCidr } from './cidr.js';
import { BatchRequester, type NetlinkDatagramSocket } from './requester.js';
import {
  decodeRouteMessage,
  encodeRouteMessage,
  NLM_F_CREATE,
  NLM_F_REPLACE,
  type RouteMsg,
  RTM_DELROUTE,
  RTM_NEWROUTE,
} from './rtmsg.js';

/*
 * The package's rtnetlink, raw-socket and rtnetlink-struct files only, required when first used.
 * `import ... from 'netlink'` runs node's CommonJS export scanner over the package index and all it
 * re-exports (nl80211, genl, WireGuard): measured 80-130 ms on node 20 (a loaded 2-core machine), against
 * 20-60 ms for these three files, and spent at the agent's start, before its first gratuitous round, for
 * routes it programs only later.
 */
const require = createRequire(import.meta.url);
type Package = Pick<typeof import('netlink'), 'createRtNetlink' | 'RawNetlinkSocket' | 'rt'>;
let loaded: Package | undefined;
const netlink = (): Package =>
  (loaded ??= {
    ...(require('netlink/dist/rt/rt') as Pick<Package, 'createRtNetlink'>),
    ...(require('netlink/dist/raw') as Pick<Package, 'RawNetlinkSocket'>),
    rt: require('netlink/dist/rt/structs') as typeof rt,
  });
/** NETLINK_ROUTE. */
const NETLINK_ROUTE = 0;

/** The main routing table (RT_TABLE_MAIN). */
const MAIN_TABLE = 254;

/** A route as the kernel holds it (main table, unicast). */
export interface KernelRoute {
  family: IpFamily;
  /** Canonical destination prefix. */
  dst: string;
  gateway?: string;
  ifindex?: number;
  protocol: number;
  table: number;
  priority?: number;
}

/** A route vipmesh wants: `dst via gateway dev ifindex proto <protocol>` in the main table. */
export interface RouteSpec {
  dst: string;
  gateway: string;
  ifindex: number;
  protocol: number;
}

/** An address on an interface. */
export interface IfaceAddress {
  ifindex: number;
  family: IpFamily;
  address: string;
  prefixLen: number;
}

/** An interface. */
export interface IfaceLink {
  index: number;
  name: string;
  mtu: number;
  up: boolean;
}

/** What the kernel tells subscribers: a route appeared or went, or links/addresses changed. */
export type NetlinkEvent =
  | { kind: 'route'; op: 'add' | 'del'; route: KernelRoute }
  | { kind: 'link' }
  /** An address was added or removed, on the interface of that index (absent: not known). */
  | { kind: 'address'; ifindex?: number }
  /** Notifications were lost (socket buffer overrun): the listener must resync in full. */
  | { kind: 'overrun' };

/** The small interface the reconciler needs (tests pass a fake). */
export interface RouteNetlink {
  /** Unicast routes of the main table, both families. */
  listRoutes(): Promise<KernelRoute[]>;
  /** Create or replace (NLM_F_CREATE|NLM_F_REPLACE) the route to `spec.dst` in the main table. */
  replaceRoute(spec: RouteSpec): Promise<void>;
  /** Delete a route; the kernel matches `protocol`, so a route of another protocol is never removed. */
  deleteRoute(route: KernelRoute): Promise<void>;
  listAddresses(): Promise<IfaceAddress[]>;
  listLinks(): Promise<IfaceLink[]>;
  /** Start delivering route, link and address notifications to `listener`. */
  subscribe(listener: (event: NetlinkEvent) => void): void;
  close(): void;
}

const AF_INET = 2;
const AF_INET6 = 10;
const NEWROUTE = 24;
const DELROUTE = 25;

/** Turn the package's "Request rejected: EEXIST" into a VipmeshError whose cause carries `code: 'EEXIST'`. */
function netlinkError(op: string, err: unknown): VipmeshError {
  const message = (err as Error)?.message ?? String(err);
  const m = /rejected: (E[A-Z0-9]+)/.exec(message);
  const errno = m?.[1] ?? (/Timeout/.test(message) ? 'ETIMEDOUT' : (err as { code?: string })?.code);
  const cause = Object.assign(new Error(message), errno === undefined ? {} : { code: errno });
  return new VipmeshError('VIPMESH_HOSTGW_NETLINK', `${op}: ${errno ?? message}`, {
    cause,
    details: { errno },
  });
}

function protocolNumber(p: unknown): number {
  if (typeof p === 'number') return p;
  if (typeof p === 'string')
    return (netlink().rt.RouteProtocol as unknown as Record<string, number>)[p] ?? -1;
  return 0;
}

function toKernelRoute(msg: rt.RouteMessage): KernelRoute | undefined {
  const { data, attrs } = msg;
  const family = data.family === AF_INET ? 4 : data.family === AF_INET6 ? 6 : undefined;
  if (family === undefined) return undefined;
  const table = attrs.table ?? data.table ?? 0;
  const type = typeof data.type === 'string' ? data.type : netlink().rt.RouteType[data.type ?? 0];
  if (table !== MAIN_TABLE || type !== 'UNICAST') return undefined;
  const dstIp: Ip | undefined = attrs.dst === undefined ? { family, value: 0n } : ipFromBytes(attrs.dst);
  if (dstIp === undefined) return undefined;
  const route: KernelRoute = {
    family,
    dst: formatCidr({ ...dstIp, len: data.dstLen ?? 0 }),
    protocol: protocolNumber(data.protocol),
    table,
  };
  const gw = attrs.gateway === undefined ? undefined : ipFromBytes(attrs.gateway);
  if (gw !== undefined) route.gateway = formatIp(gw);
  if (attrs.oif !== undefined) route.ifindex = attrs.oif;
  if (attrs.priority !== undefined) route.priority = attrs.priority;
  return route;
}

/** The same, from the hot-path codec's decoding of a notification. */
export function routeFromMsg(m: RouteMsg): KernelRoute | undefined {
  const family = m.family === AF_INET ? 4 : m.family === AF_INET6 ? 6 : undefined;
  if (family === undefined || m.table !== MAIN_TABLE || m.type !== 1) return undefined;
  const dstIp: Ip | undefined = m.dst === undefined ? { family, value: 0n } : ipFromBytes(m.dst);
  if (dstIp === undefined || dstIp.family !== family || m.dstLen > (family === 4 ? 32 : 128))
    return undefined;
  const route: KernelRoute = {
    family,
    dst: formatCidr({ ...dstIp, len: m.dstLen }),
    protocol: m.protocol,
    table: m.table,
  };
  const gw = m.gateway === undefined ? undefined : ipFromBytes(m.gateway);
  if (gw !== undefined) route.gateway = formatIp(gw);
  if (m.oif !== undefined) route.ifindex = m.oif;
  if (m.priority !== undefined) route.priority = m.priority;
  return route;
}

/** Options of {@link createRouteNetlink}. */
interface RouteNetlinkOptions {
  /** SO_RCVBUF of the notification socket; default 4 MiB (a 1,000-route change sends 1,000 notifications). */
  eventBufferBytes?: number;
  /** Give up on a request after this long (ms); default 5,000. */
  requestTimeoutMs?: number;
}

/**
 * The production layer over three rtnetlink sockets: dumps (links, addresses, routes) through the
 * package's rtnetlink API, route changes through the pipelined {@link BatchRequester} on a raw socket,
 * and notifications on a socket subscribed to the route, link and address groups.
 */
export function createRouteNetlink(opts: RouteNetlinkOptions = {}): RouteNetlink {
  const { createRtNetlink, RawNetlinkSocket } = netlink();
  const sock: RtNetlinkSocket = createRtNetlink();
  // A lost reply must not hang a pass forever; the error itself surfaces as that request's timeout.
  sock.socket.on('error', () => undefined);
  const timeout = opts.requestTimeoutMs ?? 5_000;
  // The package reassembles one multipart reply per socket at a time: two dumps in flight on it get
  // mixed up ("Multipart message not terminated properly"), so dumps take turns.
  let dumps: Promise<unknown> = Promise.resolve();
  const dump = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = dumps.then(fn, fn);
    dumps = run.catch(() => undefined);
    return run;
  };
  // Route changes go through the pipelined requester on a raw socket of the same package.
  const raw = new RawNetlinkSocket(NETLINK_ROUTE, { recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
  const datagrams: NetlinkDatagramSocket = {
    send: (parts, cb) => raw.send(parts, {}, (err) => cb(err)),
    onMessage: (fn) => raw.on('message', (buf, rinfo) => fn(buf, rinfo.port)),
    close: () => raw.close(),
  };
  const requester = new BatchRequester(datagrams, { timeoutMs: timeout });
  // ENOBUFS here means acks were dropped: fail what is pending now (the reconciler retries) rather
  // than wait for the timeout.
  raw.on('error', (err) => requester.abortPending(err.code ?? 'EIO'));
  let events: RtNetlinkSocket | undefined;
  const family = (f: IpFamily) => (f === 4 ? AF_INET : AF_INET6);

  return {
    async listRoutes() {
      try {
        const out: KernelRoute[] = [];
        for (const f of [AF_INET, AF_INET6]) {
          for (const m of await dump(() => sock.getRoutes({ family: f }, undefined, { timeout }))) {
            const r = toKernelRoute(m);
            if (r !== undefined) out.push(r);
          }
        }
        return out;
      } catch (err) {
        throw netlinkError('listing routes', err);
      }
    },

    async replaceRoute(spec) {
      const dst = parseCidr(spec.dst, 'route');
      const gw = parseIp(spec.gateway)!;
      const msg: RouteMsg = {
        family: family(dst.family),
        dstLen: dst.len,
        table: MAIN_TABLE,
        protocol: spec.protocol,
        scope: 0,
        type: 1,
        dst: ipToBytes(dst),
        gateway: ipToBytes(gw),
        oif: spec.ifindex,
      };
      await requester.request(`route ${spec.dst} via ${spec.gateway}`, (seq, flags) =>
        encodeRouteMessage(RTM_NEWROUTE, flags | NLM_F_CREATE | NLM_F_REPLACE, seq, msg),
      );
    },

    async deleteRoute(route) {
      const dst = parseCidr(route.dst, 'route');
      const msg: RouteMsg = {
        family: family(dst.family),
        dstLen: dst.len,
        table: route.table,
        // The kernel only deletes a route whose protocol matches: never one vipmesh did not make.
        protocol: route.protocol,
        scope: 0,
        type: 0,
        dst: ipToBytes(dst),
      };
      if (route.priority !== undefined) msg.priority = route.priority;
      if (route.ifindex !== undefined) msg.oif = route.ifindex;
      await requester.request(`deleting route ${route.dst}`, (seq, flags) =>
        encodeRouteMessage(RTM_DELROUTE, flags, seq, msg),
      );
    },

    async listAddresses() {
      try {
        const out: IfaceAddress[] = [];
        for (const m of await dump(() => sock.getAddresses(undefined, undefined, { timeout }))) {
          const ip = ipFromBytes(m.attrs.local ?? m.attrs.address ?? Buffer.alloc(0));
          if (ip === undefined || m.data.index === undefined) continue;
          out.push({
            ifindex: m.data.index,
            family: ip.family,
            address: formatIp(ip),
            prefixLen: m.data.prefixlen ?? 0,
          });
        }
        return out;
      } catch (err) {
        throw netlinkError('listing addresses', err);
      }
    },

    async listLinks() {
      try {
        return (await dump(() => sock.getLinks(undefined, undefined, { timeout }))).map((m) => ({
          index: m.data.index ?? 0,
          name: m.attrs.ifname ?? '',
          mtu: m.attrs.mtu ?? 1500,
          up: m.data.flags?.up === true,
        }));
      } catch (err) {
        throw netlinkError('listing links', err);
      }
    },

    subscribe(listener) {
      if (events !== undefined) throw new Error('already subscribed');
      events = createRtNetlink({
        recvBufferSize: opts.eventBufferBytes ?? 4 << 20,
        sendBufferSize: 0,
      } as Parameters<typeof createRtNetlink>[0]);
      for (const g of ['IPV4_ROUTE', 'IPV6_ROUTE', 'LINK', 'IPV4_IFADDR', 'IPV6_IFADDR'] as const) {
        events.addMembership(g);
      }
      // ENOBUFS: the kernel dropped notifications; only a full resync is safe.
      events.socket.on('error', () => listener({ kind: 'overrun' }));
      events.socket.on('message', (msgs) => {
        for (const m of msgs) {
          if (m.type === NEWROUTE || m.type === DELROUTE) {
            const decoded = decodeRouteMessage(m.data);
            const r = decoded === undefined ? undefined : routeFromMsg(decoded);
            if (r !== undefined)
              listener({ kind: 'route', op: m.type === NEWROUTE ? 'add' : 'del', route: r });
          } else if (m.type >= 16 && m.type <= 19) {
            listener({ kind: 'link' });
          } else if (m.type >= 20 && m.type <= 23) {
            // ifaddrmsg: u8 family, prefixlen, flags, scope; u32 index (host order).
            const data = m.data as Buffer;
            listener(
              data.length >= 8 ? { kind: 'address', ifindex: data.readUInt32LE(4) } : { kind: 'address' },
            );
          }
        }
      });
    },

    close() {
      requester.close();
      sock.socket.close();
      events?.socket.close();
      events = undefined;
    },
  };
}
