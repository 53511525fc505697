import type { Etcd3, Lease } from 'etcd3';
import { type Clock, systemClock } from '../clock.js';
import type { Logger } from '../log.js';
import type { ClaimVerdict, SessionClaims } from '../tunnel/index.js';

/** Prefix of the session keys: `/vipmesh/sessions/<node>` names the server holding the node's session. */
export const SESSIONS_PREFIX = '/vipmesh/sessions/';

/**
 * How long a refused agent waits before it tries again: a session elsewhere ends within the heartbeat
 * timeout of that server (0.3 s by default) when its link broke, or within the lease TTL when the server
 * died, so a retry each second finds the key gone soon after (the agent's own backoff is capped at 1 s too).
 */
const RETRY_AFTER_MS = 1000;

/** Options of {@link EtcdSessionClaims}. */
interface EtcdSessionClaimsOptions {
  etcd: Etcd3;
  /** This server's name (the session key's value). */
  server: string;
  /** TTL of the lease the keys are bound to, whole seconds: how long a dead server's sessions count. */
  ttlSeconds: number;
  logger: Logger;
  /**
   * Close this server's session of `node`: its key was lost (the lease expired while the datastore was out
   * of reach) and another server holds the node now.
   */
  evict: (node: string, reason: string) => void;
  clock?: Clock;
}

/** The session key's value. */
interface SessionValue {
  server: string;
  /** When the session was claimed (ms since the epoch). */
  since: number;
}

/**
 * A node's tunnel session made cluster-wide: before a server takes a session it creates the node's key
 * under its own lease (one etcd Txn: create if absent); a key held by another server refuses the session
 * (the tunnel answers 409, as for a live session on the same server). The key goes when the session ends,
 * all of them at once when the server stops (the lease is revoked), and when the server dies its lease
 * expires after `ttlSeconds`, so its agents get in elsewhere. A key of this server's name left by its
 * previous run is taken over. Several sessions of one node on this server (a reconnect racing the old
 * session) share the key; the last one to end deletes it.
 */
export class EtcdSessionClaims implements SessionClaims {
  readonly #o: EtcdSessionClaimsOptions;
  readonly #clock: Clock;
  readonly #held = new Map<string, { revision: number; count: number }>();
  /** One claim or release at a time per node. */
  readonly #chains = new Map<string, Promise<unknown>>();
  #lease: Lease | undefined;
  #leaseId: Promise<string> | undefined;
  #closed = false;

  constructor(o: EtcdSessionClaimsOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
  }

  claim(node: string): Promise<ClaimVerdict> {
    return this.#serial(node, async (): Promise<ClaimVerdict> => {
      const held = this.#held.get(node);
      if (held !== undefined) {
        held.count++;
        return { ok: true, release: once(() => this.#release(node)) };
      }
      const got = await this.#put(node);
      if (!got.ok) return { ok: false, holder: got.holder, retryAfterMs: RETRY_AFTER_MS };
      this.#held.set(node, { revision: got.revision, count: 1 });
      return { ok: true, release: once(() => this.#release(node)) };
    });
  }

  /** Nodes whose session this server holds a key for (tests, metrics). */
  get held(): ReadonlySet<string> {
    return new Set(this.#held.keys());
  }

  /** Create `node`'s key under this server's lease, or take over this server's own from an earlier run. */
  async #put(node: string): Promise<{ ok: true; revision: number } | { ok: false; holder: string }> {
    const lease = await this.#leaseIdNow();
    const key = Buffer.from(`${SESSIONS_PREFIX}${node}`);
    const value: SessionValue = { server: this.#o.server, since: this.#clock.now() };
    const put = { request_put: { key, value: Buffer.from(JSON.stringify(value)), lease } };
    const first = await this.#o.etcd.kv.txn({
      compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [put],
      failure: [{ request_range: { key } }],
    });
    if (first.succeeded) return { ok: true, revision: Number(first.header.revision) };
    const cur = first.responses[0]?.response_range?.kvs[0];
    const holder = cur === undefined ? undefined : holderOf(cur.value);
    if (cur === undefined || holder !== this.#o.server) return { ok: false, holder: holder ?? 'unknown' };
    // This server's key from before a restart (its old lease still running): no session here holds it.
    const again = await this.#o.etcd.kv.txn({
      compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: cur.mod_revision }],
      success: [put],
      failure: [],
    });
    if (again.succeeded) return { ok: true, revision: Number(again.header.revision) };
    return { ok: false, holder: 'another server' };
  }

  #release(node: string): void {
    void this.#serial(node, async () => {
      const held = this.#held.get(node);
      if (held === undefined || --held.count > 0) return;
      this.#held.delete(node);
      if (this.#closed) return; // the revoked lease took the key
      const key = Buffer.from(`${SESSIONS_PREFIX}${node}`);
      await this.#o.etcd.kv.txn({
        compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: held.revision }],
        success: [{ request_delete_range: { key } }],
        failure: [],
      });
    }).catch((err: unknown) => {
      // The key then goes with the lease (or the next claim of this server takes it over).
      this.#o.logger.warn({ node, err: (err as Error).message }, 'could not delete the session key');
    });
  }

  #leaseIdNow(): Promise<string> {
    if (this.#leaseId !== undefined) return this.#leaseId;
    const lease = this.#o.etcd.lease(this.#o.ttlSeconds, { autoKeepAlive: true });
    this.#lease = lease;
    const id = lease.grant();
    this.#leaseId = id;
    id.catch(() => {
      if (this.#lease === lease) this.#forgetLease();
    });
    lease.on('lost', (err: Error) => {
      if (this.#lease !== lease) return;
      this.#o.logger.warn({ err: err.message }, 'the session lease was lost; claiming the sessions again');
      this.#forgetLease();
      void this.#reclaim();
    });
    return id;
  }

  #forgetLease(): void {
    this.#lease = undefined;
    this.#leaseId = undefined;
  }

  /** After a lost lease: the keys of this server's sessions again, or the sessions go where another holds them. */
  async #reclaim(): Promise<void> {
    for (const node of [...this.#held.keys()]) {
      if (this.#closed) return;
      try {
        const got = await this.#serial(node, () => this.#put(node));
        const held = this.#held.get(node);
        if (got.ok) {
          if (held !== undefined) held.revision = got.revision;
          continue;
        }
        this.#held.delete(node);
        this.#o.evict(node, `the session key was lost and server ${got.holder} holds node ${node} now`);
      } catch (err) {
        this.#o.logger.warn({ node, err: (err as Error).message }, 'could not claim the session again');
      }
    }
  }

  #serial<T>(node: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#chains.get(node) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.#chains.set(node, next);
    const clear = () => {
      if (this.#chains.get(node) === next) this.#chains.delete(node);
    };
    next.then(clear, clear);
    return next;
  }

  /** Revoke the lease: every session key of this server goes at once, so its agents get in elsewhere. */
  async close(): Promise<void> {
    this.#closed = true;
    const lease = this.#lease;
    this.#forgetLease();
    await lease?.revoke().catch(() => undefined);
  }
}

function holderOf(value: Buffer): string | undefined {
  try {
    const v = JSON.parse(value.toString()) as Partial<SessionValue>;
    return typeof v.server === 'string' ? v.server : undefined;
  } catch {
    return undefined;
  }
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
