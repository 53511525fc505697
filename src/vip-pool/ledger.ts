import { VipmeshError } from '../errors.js';
import { formatIp, type Ip, type IpFamily } from '../util/ip.js';
import { Codes } from './codes.js';
import type { PoolState, RangeIndex, RangeState } from './pool-state.js';
import type { ProtocolPort, ServiceRequest } from './types.js';

/** A Service's addresses as the allocator holds them. */
export interface Held {
  service: string;
  pool: PoolState;
  ips: string[];
  /** `ips` parsed, same order. */
  values: Ip[];
  sharingKey: string | undefined;
  /** See {@link ServiceRequest.backendKey}. */
  backendKey: string | undefined;
  ports: ProtocolPort[];
}

interface IpUse {
  family: IpFamily;
  value: bigint;
  range: RangeState;
  users: Map<
    string,
    { sharingKey: string | undefined; backendKey: string | undefined; ports: ProtocolPort[] }
  >;
}

function fail(code: string, message: string, details: Record<string, unknown> = {}): never {
  throw new VipmeshError(code, message, { details });
}

/**
 * The allocator's bookkeeping: who holds which address, under which sharing key and ports, and which
 * addresses each sharing key uses. Used addresses are marked in their range's run set. It throws
 * ALLOCATOR_INCONSISTENT when asked to undo something it never recorded: a bug, not a user error.
 */
export class Ledger {
  private readonly ips = new Map<string, IpUse>();
  private readonly held = new Map<string, Held>();
  private readonly shared = new Map<string, Set<string>>();

  constructor(private readonly index: RangeIndex) {}

  /** What `service` holds. */
  get(service: string): Held | undefined {
    return this.held.get(service);
  }

  /** Everything held, in no particular order. */
  all(): IterableIterator<Held> {
    return this.held.values();
  }

  /** The addresses of `pool` and `family` that `sharingKey` uses, lowest first, with their range. */
  sharedIn(
    sharingKey: string,
    pool: PoolState,
    family: IpFamily,
  ): Array<{ ip: string; value: Ip; range: RangeState }> {
    return [...(this.shared.get(sharingKey) ?? [])]
      .map((ip) => this.ips.get(ip)!)
      .filter((u) => u.range.pool === pool && u.family === family)
      .sort((a, b) => (a.value < b.value ? -1 : 1))
      .map((u) => ({ ip: formatIp(u), value: { family, value: u.value }, range: u.range }));
  }

  /** Why `key` may not use `ip` with this key and these ports, or undefined when it may. */
  shareProblem(
    ip: string,
    key: string,
    sharingKey: string | undefined,
    ports: readonly ProtocolPort[],
    backendKey: string | undefined,
  ): string | undefined {
    const use = this.ips.get(ip);
    if (use === undefined) return undefined;
    for (const [other, u] of use.users) {
      if (other === key) continue;
      if (sharingKey === undefined || u.sharingKey !== sharingKey) {
        const theirs =
          u.sharingKey === undefined
            ? 'which does not share it (no allow-shared-ip key)'
            : `which shares it only under allow-shared-ip "${u.sharingKey}"`;
        return `${ip} is in use by ${other}, ${theirs}`;
      }
      if (u.backendKey !== backendKey) {
        const sel = (k: string | undefined) =>
          k === undefined ? 'externalTrafficPolicy Cluster' : `externalTrafficPolicy Local selecting ${k}`;
        return `${ip} is in use by ${other} (${sel(u.backendKey)}), and this Service has ${sel(backendKey)}: with Local, only Services selecting the same pods may share an address`;
      }
      const clash = ports.find((p) => u.ports.some((q) => q.protocol === p.protocol && q.port === p.port));
      if (clash !== undefined)
        return `${ip} is in use by ${other} with the same allow-shared-ip key, and both use ${clash.protocol}/${clash.port}`;
    }
    return undefined;
  }

  /** Throw IP_IN_USE (naming the holder) unless `key` may use `ip`. */
  checkShare(
    ip: string,
    key: string,
    svc: Pick<ServiceRequest, 'sharingKey' | 'backendKey' | 'ports'>,
  ): void {
    const msg = this.shareProblem(ip, key, svc.sharingKey, svc.ports, svc.backendKey);
    if (msg !== undefined)
      fail(Codes.IP_IN_USE, `${key}: ${msg}`, {
        service: key,
        ip,
        holder: [...this.ips.get(ip)!.users.keys()][0],
      });
  }

  /** Record `h` (its addresses must be free or shareable: callers check first). */
  take(h: Held): void {
    for (const [i, ip] of h.ips.entries()) {
      let use = this.ips.get(ip);
      if (use === undefined) {
        const v = h.values[i]!;
        const range = this.index.find(v.family, v.value);
        if (range === undefined || !range.take(v.value))
          fail(Codes.ALLOCATOR_INCONSISTENT, `${ip} is not free in any range`);
        use = { family: v.family, value: v.value, range, users: new Map() };
        this.ips.set(ip, use);
      }
      use.users.set(h.service, { sharingKey: h.sharingKey, backendKey: h.backendKey, ports: h.ports });
      if (h.sharingKey !== undefined) {
        const set = this.shared.get(h.sharingKey) ?? new Set<string>();
        set.add(ip);
        this.shared.set(h.sharingKey, set);
      }
    }
    this.held.set(h.service, h);
  }

  /** Forget `h`, freeing addresses nobody else holds. */
  drop(h: Held): void {
    for (const ip of h.ips) {
      const use = this.ips.get(ip);
      if (use === undefined || !use.users.delete(h.service))
        fail(Codes.ALLOCATOR_INCONSISTENT, `${h.service} does not hold ${ip}`);
      if (use.users.size === 0) {
        this.ips.delete(ip);
        if (!use.range.free(use.value)) fail(Codes.ALLOCATOR_INCONSISTENT, `${ip} was not marked used`);
      }
      if (h.sharingKey !== undefined && ![...use.users.values()].some((u) => u.sharingKey === h.sharingKey)) {
        const set = this.shared.get(h.sharingKey);
        set?.delete(ip);
        if (set?.size === 0) this.shared.delete(h.sharingKey);
      }
    }
    this.held.delete(h.service);
  }
}
