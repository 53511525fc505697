/**
 * An in-memory stand-in for the netlink layer, for unit tests: a main table with the
 * kernel's rules that matter here (one route per prefix and metric; NLM_F_REPLACE takes over; delete
 * matches the protocol; gateways must be on-link) and notifications delivered like the kernel's.
 */
import { VipmeshError } from '../errors.js';
import { parseCidr } from '../flannel-hostgw/cidr.js';
import type {
  IfaceAddress,
  IfaceLink,
  KernelRoute,
  NetlinkEvent,
  RouteNetlink,
  RouteSpec,
} from '../flannel-hostgw/netlink.js';
import { metricOf } from '../flannel-hostgw/plan.js';
import { contains } from '../util/cidr.js';
import { formatIp, parseIp } from '../util/ip.js';

function errno(code: string, op: string): VipmeshError {
  return new VipmeshError('VIPMESH_HOSTGW_NETLINK', `${op}: ${code}`, {
    cause: Object.assign(new Error(code), { code }),
    details: { errno: code },
  });
}

/** A fake kernel: routes, links and addresses you can change by hand, as another program would. */
export class FakeNetlink implements RouteNetlink {
  routes: KernelRoute[] = [];
  links: IfaceLink[] = [{ index: 2, name: 'eth0', mtu: 1500, up: true }];
  addresses: IfaceAddress[] = [{ ifindex: 2, family: 4, address: '198.51.100.10', prefixLen: 24 }];
  /** Requests made, in order (`replace 198.18.1.0/24`, `delete ...`, `list`). */
  calls: string[] = [];
  /** Make the next matching request fail with this errno. */
  failNext: { op: 'replace' | 'delete' | 'list'; errno: string } | undefined;
  closed = false;
  #listener: ((ev: NetlinkEvent) => void) | undefined;

  async listRoutes(): Promise<KernelRoute[]> {
    this.calls.push('list');
    this.#maybeFail('list', 'listing routes');
    return this.routes.map((r) => ({ ...r }));
  }

  async replaceRoute(spec: RouteSpec): Promise<void> {
    this.calls.push(`replace ${spec.dst}`);
    this.#maybeFail('replace', spec.dst);
    const dst = parseCidr(spec.dst, 'route');
    const gw = parseIp(spec.gateway)!;
    const onLink = this.addresses.some(
      (a) => a.ifindex === spec.ifindex && contains(parseCidr(`${a.address}/${a.prefixLen}`, 'a', false), gw),
    );
    if (!onLink) throw errno('ENETUNREACH', spec.dst);
    const route: KernelRoute = {
      family: dst.family,
      dst: spec.dst,
      gateway: formatIp(gw),
      ifindex: spec.ifindex,
      protocol: spec.protocol,
      table: 254,
    };
    if (dst.family === 6) route.priority = 1024;
    this.routes = this.routes.filter((r) => !(r.dst === route.dst && metricOf(r) === metricOf(route)));
    this.routes.push(route);
    this.#emit({ kind: 'route', op: 'add', route: { ...route } });
  }

  async deleteRoute(route: KernelRoute): Promise<void> {
    this.calls.push(`delete ${route.dst}`);
    this.#maybeFail('delete', route.dst);
    const hit = this.routes.find(
      (r) => r.dst === route.dst && r.protocol === route.protocol && metricOf(r) === metricOf(route),
    );
    if (hit === undefined) throw errno('ESRCH', route.dst);
    this.routes = this.routes.filter((r) => r !== hit);
    this.#emit({ kind: 'route', op: 'del', route: { ...hit } });
  }

  async listAddresses(): Promise<IfaceAddress[]> {
    return this.addresses.map((a) => ({ ...a }));
  }

  async listLinks(): Promise<IfaceLink[]> {
    return this.links.map((l) => ({ ...l }));
  }

  subscribe(listener: (event: NetlinkEvent) => void): void {
    this.#listener = listener;
  }

  close(): void {
    this.closed = true;
    this.#listener = undefined;
  }

  /** Another program adds (or replaces) a route. */
  addByHand(route: KernelRoute): void {
    this.routes = this.routes.filter((r) => !(r.dst === route.dst && metricOf(r) === metricOf(route)));
    this.routes.push(route);
    this.#emit({ kind: 'route', op: 'add', route: { ...route } });
  }

  /** Another program deletes every route to `dst`. */
  deleteByHand(dst: string): void {
    for (const r of this.routes.filter((x) => x.dst === dst)) {
      this.routes = this.routes.filter((x) => x !== r);
      this.#emit({ kind: 'route', op: 'del', route: { ...r } });
    }
  }

  /** Deliver an event as the kernel would (asynchronously). */
  emitLater(ev: NetlinkEvent): void {
    this.#emit(ev);
  }

  #emit(ev: NetlinkEvent): void {
    const l = this.#listener;
    if (l !== undefined) queueMicrotask(() => l(ev));
  }

  #maybeFail(op: 'replace' | 'delete' | 'list', what: string): void {
    if (this.failNext?.op === op) {
      const code = this.failNext.errno;
      this.failNext = undefined;
      throw errno(code, what);
    }
  }
}
