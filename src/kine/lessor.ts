import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.js';
import type { Committer } from './committer.js';
import type { SqliteDialect } from './dialect.js';
import { etcdErrors } from './errors.js';
import type { LeaseIndex, Mvcc } from './mvcc.js';

/**
 * etcd's minimum lease TTL with its default election timeout: ceil(1.5 * 10 ticks * 100 ms) = 2 s
 * (etcdserver/server.go minTTL). A shorter TTL is raised to this.
 */
const MIN_LEASE_TTL_SECONDS = 2;
/** etcd's MaxLeaseTTL (lease/lessor.go), seconds. */
const MAX_LEASE_TTL_SECONDS = 9_000_000_000;
/** How often expiry is checked; etcd's lessor checks every 500 ms too. */
const EXPIRY_CHECK_MS = 500;

interface Lease {
  id: number;
  /** The granted TTL, seconds. */
  ttlSeconds: number;
  /** When it expires, ms since the epoch on the injected clock. */
  expiresAt: number;
  keys: Map<string, Buffer>;
  revoking: boolean;
}

/** What LeaseTimeToLive answers for a known lease. */
export interface LeaseTtl {
  id: number;
  /** Seconds left before the lease expires. */
  ttlSeconds: number;
  /** The TTL the lease was granted with, in seconds. */
  grantedTtlSeconds: number;
  /** Its keys, sorted. */
  keys: Buffer[];
}

/**
 * Leases: grant, revoke, keep-alive, time-to-live, list and expiry. Grants and revokes are durable writes
 * through the committer; keep-alives move the expiry in memory and are persisted with the next batch (as
 * etcd checkpoints remaining TTLs), so after a restart a lease keeps its remaining TTL.
 */
export class Lessor implements LeaseIndex {
  readonly #leases = new Map<number, Lease>();
  readonly #db: SqliteDialect;
  readonly #mvcc: Mvcc;
  readonly #committer: Committer;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #dirty = new Set<number>();
  #timer: TimerHandle | undefined;
  #persistScheduled = false;

  constructor(db: SqliteDialect, mvcc: Mvcc, committer: Committer, clock: Clock, log: Logger) {
    this.#db = db;
    this.#mvcc = mvcc;
    this.#committer = committer;
    this.#clock = clock;
    this.#log = log;
    this.reload();
  }

  /** Rebuild leases and their key sets from disk. */
  reload(): void {
    this.#leases.clear();
    for (const row of this.#db.leases()) {
      this.#leases.set(row.id, {
        id: row.id,
        ttlSeconds: row.ttl,
        expiresAt: row.expires_at,
        keys: new Map(),
        revoking: false,
      });
    }
    for (const row of this.#db.leasedKeys()) this.attach(row.lease, row.name);
  }

  /** Start checking for expired leases. */
  start(): void {
    const tick = () => {
      this.#timer = this.#clock.setTimeout(tick, EXPIRY_CHECK_MS);
      this.expire();
    };
    this.#timer = this.#clock.setTimeout(tick, EXPIRY_CHECK_MS);
  }

  stop(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  has(id: number): boolean {
    return this.#leases.has(id);
  }

  attach(id: number, key: Buffer): void {
    this.#leases.get(id)?.keys.set(key.toString('latin1'), key);
  }

  detach(id: number, key: Buffer): void {
    this.#leases.get(id)?.keys.delete(key.toString('latin1'));
  }

  /** Lease.LeaseGrant: `id` 0 lets the server choose. Resolves with the ID and the granted TTL. */
  async grant(id: number, ttlSeconds: number): Promise<{ id: number; ttlSeconds: number }> {
    if (ttlSeconds > MAX_LEASE_TTL_SECONDS) throw etcdErrors.leaseTTLTooLarge();
    if (id < 0 || !Number.isSafeInteger(id)) throw etcdErrors.leaseNotFound();
    const granted = Math.max(ttlSeconds, MIN_LEASE_TTL_SECONDS);
    return this.#committer.submit(() => {
      let leaseId = id;
      if (leaseId === 0) {
        do leaseId = randomInt(1, 2 ** 47) * 64 + randomInt(0, 64);
        while (this.#leases.has(leaseId));
      } else if (this.#leases.has(leaseId)) {
        throw etcdErrors.leaseExist();
      }
      const expiresAt = this.#clock.now() + granted * 1000;
      this.#db.leasePut({ id: leaseId, ttl: granted, expires_at: expiresAt });
      this.#leases.set(leaseId, {
        id: leaseId,
        ttlSeconds: granted,
        expiresAt,
        keys: new Map(),
        revoking: false,
      });
      return { id: leaseId, ttlSeconds: granted };
    });
  }

  /** Lease.LeaseRevoke: delete the lease and its keys (one revision). Resolves with the header revision. */
  async revoke(id: number): Promise<number> {
    if (!this.#leases.has(id)) throw etcdErrors.leaseNotFound();
    return this.#committer.submit(() => {
      const lease = this.#leases.get(id);
      if (lease === undefined) throw etcdErrors.leaseNotFound();
      const { rev } = this.#mvcc.write((tx) => {
        const rows = [...lease.keys.values()]
          .sort(Buffer.compare)
          .flatMap((k) => this.#mvcc.liveRows({ key: k, end: null, single: true }));
        this.#mvcc.deleteRows(tx, rows);
      });
      this.#db.leaseDelete(id);
      this.#leases.delete(id);
      this.#dirty.delete(id);
      return rev;
    });
  }

  /** Lease.LeaseKeepAlive: renew; returns the granted TTL, or 0 for an unknown lease (as etcd answers). */
  renew(id: number): number {
    const lease = this.#leases.get(id);
    if (lease === undefined || lease.revoking) return 0;
    lease.expiresAt = this.#clock.now() + lease.ttlSeconds * 1000;
    this.#dirty.add(id);
    this.#schedulePersist();
    return lease.ttlSeconds;
  }

  /** Lease.LeaseTimeToLive; undefined for an unknown lease. */
  timeToLive(id: number, withKeys: boolean): LeaseTtl | undefined {
    const lease = this.#leases.get(id);
    if (lease === undefined) return undefined;
    const remaining = Math.max(0, Math.floor((lease.expiresAt - this.#clock.now()) / 1000));
    const keys = withKeys ? [...lease.keys.values()].sort(Buffer.compare) : [];
    return { id, ttlSeconds: remaining, grantedTtlSeconds: lease.ttlSeconds, keys };
  }

  /** Lease.LeaseLeases */
  list(): number[] {
    return [...this.#leases.keys()];
  }

  /** Revoke every lease whose time is up (called by the timer; public for tests on a fake clock). */
  expire(): void {
    const now = this.#clock.now();
    for (const lease of this.#leases.values()) {
      if (lease.revoking || lease.expiresAt > now) continue;
      lease.revoking = true;
      this.#log.debug({ op: 'expire', lease: lease.id, keys: lease.keys.size }, 'lease expired');
      this.revoke(lease.id).catch((err: unknown) => {
        lease.revoking = false;
        this.#log.warn({ err, lease: lease.id }, 'revoking an expired lease failed; will retry');
      });
    }
  }

  #schedulePersist(): void {
    if (this.#persistScheduled) return;
    this.#persistScheduled = true;
    // Keep-alives are not acknowledged as durable (etcd does not persist them either); write the new expiry
    // with the next batch so a restart honours the remaining TTL.
    this.#committer
      .submit(() => {
        this.#persistScheduled = false;
        for (const id of this.#dirty) {
          const l = this.#leases.get(id);
          if (l !== undefined) this.#db.leasePut({ id, ttl: l.ttlSeconds, expires_at: l.expiresAt });
        }
        this.#dirty.clear();
      })
      .catch((err: unknown) => {
        this.#persistScheduled = false;
        this.#log.warn({ err }, 'persisting lease expiries failed');
      });
  }
}
