import type { Campaign, Etcd3, Lease, Watcher } from 'etcd3';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import type { Logger } from '../log.js';
import { encodeLiveness, type ServerAddress } from './master-watch.js';

/** The election all servers of one datastore campaign in. */
export const ELECTION_NAME = 'vipmesh-master';
/** Prefix of the servers' liveness keys (each bound to its server's lease). */
export const SERVERS_PREFIX = '/vipmesh/servers/';

/** Options of {@link MasterElection}. */
interface MasterElectionOptions {
  etcd: Etcd3;
  /** This server's name (the campaign value). */
  name: string;
  /** Lease TTL in whole seconds: how long a master that died keeps the role. */
  ttlSeconds: number;
  logger: Logger;
  /** Called with true when elected, false when the role is lost (or resigned). */
  onChange: (master: boolean) => void;
  /** Pause before campaigning again after losing the role [1 s]. */
  retryMs?: number;
  /** Time source for the retry pause and the liveness key's timestamp [the system clock]. */
  clock?: Clock;
  /** Where the other servers reach this one's API (put in the liveness key for their master watch). */
  address?: ServerAddress;
}

/**
 * Master election through an etcd lease (the `etcd3` client's Election): the master is the campaign whose
 * key is oldest; its lease is kept alive while the process lives, so a master that dies hands over after
 * `ttlSeconds`, one that shuts down at once (it resigns). Also keeps this server's liveness key
 * (`/vipmesh/servers/<name>`) on a lease of the same TTL, which the master uses to tell dead servers.
 */
export class MasterElection {
  readonly #o: MasterElectionOptions;
  readonly #clock: Clock;
  #campaign: Campaign | undefined;
  /** The watch on the campaign's own key while master. */
  #keyWatch: Watcher | undefined;
  #lease: Lease | undefined;
  #master = false;
  #closed = false;
  #timer: TimerHandle | undefined;

  constructor(o: MasterElectionOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
  }

  get master(): boolean {
    return this.#master;
  }

  start(): void {
    this.#campaignNow();
    this.#keepLiveness();
  }

  #set(master: boolean): void {
    if (this.#master === master) return;
    this.#master = master;
    this.#o.logger.info({ server: this.#o.name }, master ? 'elected master' : 'no longer master');
    this.#o.onChange(master);
  }

  #campaignNow(): void {
    if (this.#closed) return;
    const c = this.#o.etcd.election(ELECTION_NAME, this.#o.ttlSeconds).campaign(this.#o.name);
    this.#campaign = c;
    c.on('elected', () => {
      if (this.#campaign !== c || this.#closed) return;
      this.#set(true);
      this.#followOwnKey(c).catch((err: unknown) =>
        this.#lose(c, `cannot watch the election key: ${(err as Error).message}`),
      );
    });
    c.on('error', (err: Error) => this.#lose(c, `election campaign failed: ${err.message}`));
  }

  /** Campaign `c` is over (failed, or its key is gone): not master; campaign again after the pause. */
  #lose(c: Campaign, why: string): void {
    if (this.#campaign !== c) return;
    this.#o.logger.warn({ why }, 'lost the election; campaigning again');
    this.#campaign = undefined;
    void this.#keyWatch?.cancel().catch(() => undefined);
    this.#keyWatch = undefined;
    this.#set(false);
    void c.resign().catch(() => undefined);
    this.#retry(() => this.#campaignNow());
  }

  /**
   * While master, watch the campaign's own key: another server revokes the lease of a master it cannot
   * reach (src/server/master-watch.ts), and the lease's keep-alive would tell only at its next round (a
   * third of the TTL); the key's deletion tells at once.
   */
  async #followOwnKey(c: Campaign): Promise<void> {
    const key = await c.getCampaignKey();
    const w = await this.#o.etcd.watch().key(key).create();
    if (this.#campaign !== c) {
      await w.cancel();
      return;
    }
    this.#keyWatch = w;
    w.on('delete', () => this.#lose(c, 'the election key was deleted (another server revoked its lease)'));
    w.on('error', () => undefined);
    if (!(await this.#o.etcd.get(key).exists())) this.#lose(c, 'the election key is gone');
  }

  #keepLiveness(): void {
    if (this.#closed) return;
    const lease = this.#o.etcd.lease(this.#o.ttlSeconds, { autoKeepAlive: true });
    this.#lease = lease;
    lease.on('lost', () => {
      if (this.#lease !== lease) return;
      this.#lease = undefined;
      this.#retry(() => this.#keepLiveness());
    });
    lease
      .put(`${SERVERS_PREFIX}${this.#o.name}`)
      .value(encodeLiveness(this.#clock.now(), this.#o.address))
      .exec()
      .catch((err: unknown) => {
        this.#o.logger.warn({ err: (err as Error).message }, 'cannot write the liveness key; retrying');
        if (this.#lease === lease) {
          this.#lease = undefined;
          void lease.revoke().catch(() => undefined);
          this.#retry(() => this.#keepLiveness());
        }
      });
  }

  #retry(fn: () => void): void {
    if (this.#closed) return;
    this.#timer = this.#clock.setTimeout(fn, this.#o.retryMs ?? 1000);
  }

  /** Resign (the next server takes over at once) and drop the liveness key. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    const c = this.#campaign;
    this.#campaign = undefined;
    this.#set(false);
    await Promise.allSettled([c?.resign(), this.#lease?.revoke(), this.#keyWatch?.cancel()]);
  }
}
