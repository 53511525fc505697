import { connect } from 'node:net';
import { type Etcd3, EtcdLeaseInvalidError } from 'etcd3';
import type { Registry } from 'prom-client';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import type { Logger } from '../log.js';
import { Counter } from '../metrics.js';
import { ELECTION_NAME, SERVERS_PREFIX } from './election.js';

/** Prefix of the servers' suspicions: `<prefix><master's campaign lease>/<server>`, each on a short lease. */
export const SUSPECTS_PREFIX = '/vipmesh/suspects/';
/** How long a suspicion lasts unless said again (a few probe rounds; etcd's shortest lease is about 2 s). */
const SUSPECT_TTL_SECONDS = 3;

/** Where a server can be reached, as its liveness key says. */
export interface ServerAddress {
  host: string;
  port: number;
}

/** The liveness key's value: since when the server runs, and where its API listens (absent: an older server). */
export function encodeLiveness(since: number, address: ServerAddress | undefined): string {
  return JSON.stringify(address === undefined ? { since } : { since, ...address });
}

/** The address in a liveness value; undefined for an older server's (a bare timestamp) or anything else. */
export function decodeLiveness(value: string): ServerAddress | undefined {
  try {
    const v = JSON.parse(value) as { host?: unknown; port?: unknown };
    if (typeof v !== 'object' || v === null) return undefined;
    if (typeof v.host !== 'string' || v.host === '') return undefined;
    if (typeof v.port !== 'number' || !Number.isInteger(v.port) || v.port < 1 || v.port > 65_535)
      return undefined;
    return { host: v.host, port: v.port };
  } catch {
    return undefined;
  }
}

/** True when a TCP connection to `address` is accepted within `timeoutMs` (the peer's kernel is up). */
export function tcpReachable(address: ServerAddress, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: address.host, port: address.port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** The master as the election keys say: its name, its campaign's lease and its address. */
interface MasterSeen {
  name: string;
  lease: string;
  address: ServerAddress | undefined;
}

/** Options of {@link MasterWatch}. Defaults in brackets. */
export interface MasterWatchOptions {
  etcd: Etcd3;
  /** This server's name (it never watches itself). */
  self: string;
  /** Whether this server is master now (a master watches nobody). */
  isMaster: () => boolean;
  logger: Logger;
  clock?: Clock;
  registry?: Registry;
  /** Time between two probes of the master [100 ms]. */
  intervalMs?: number;
  /** Failed probes in a row that depose it [3]. */
  misses?: number;
  /** How long a probe waits for the connection [100 ms]. */
  timeoutMs?: number;
  /** How often the master's identity is read again while it answers [2 s]. */
  refreshMs?: number;
  /** How long one of its etcd reads may take (they are local to the member) [500 ms]. */
  callTimeoutMs?: number;
  /**
   * How long the watch waits for one of its writes [150 ms]. Without an etcd leader (the cut master was
   * also etcd's leader) a write is dropped and would wait until its deadline; a short one starts the next
   * try soon, so one of the first rounds after etcd elects a new leader gets through. A write that was
   * only slow still commits: the watch counts what etcd holds, not the answers it got.
   */
  writeTimeoutMs?: number;
  /** The probe [a TCP connect to the master's API port]. */
  probe?: (address: ServerAddress, timeoutMs: number) => Promise<boolean>;
}

/**
 * A server that is not master watches the master's machine: a TCP connect to its API port every
 * `intervalMs`. After `misses` failures in a row it says so in etcd (a suspicion key on a short lease), and
 * once most servers say so it revokes the lease of the master's campaign: the next server in the election
 * takes over at once instead of when that lease expires (the election TTL, and after an etcd leader change
 * the TTL again, since a new etcd leader renews every lease).
 *
 * Why this does not depose a live master by mistake, or flap:
 * - The probe is answered by the master's kernel, not its event loop: a busy or paused process still
 *   accepts connections, so only a machine that is gone, cut off, or whose server process is dead
 *   (connection refused) fails it.
 * - Most servers must fail it (the master counts among the servers and never agrees): one server with a
 *   broken path to the master deposes nobody, and with two servers nobody is ever deposed this way (the
 *   election TTL decides, as without this watch).
 * - The suspicions and the revoke are etcd writes: they need the quorum, so servers cut off themselves, or
 *   a cluster below quorum, depose nobody.
 * - A master whose lease is revoked while it still runs loses its campaign at once (it watches its own
 *   election key) and stops its controllers; the next master is the one whose campaign is oldest.
 */
export class MasterWatch {
  readonly #o: MasterWatchOptions;
  readonly #clock: Clock;
  readonly #probe: (address: ServerAddress, timeoutMs: number) => Promise<boolean>;
  readonly #revoked: Counter<'master'> | undefined;
  #timer: TimerHandle | undefined;
  #master: MasterSeen | undefined;
  #readAt = 0;
  #failures = 0;
  #closed = false;
  /** The master lease last warned about (one warning per master). */
  #warnedFor: string | undefined;

  constructor(o: MasterWatchOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#probe = o.probe ?? tcpReachable;
    if (o.registry !== undefined) {
      this.#revoked =
        (o.registry.getSingleMetric('vipmesh_controlplane_master_deposed_total') as Counter<'master'>) ??
        new Counter({
          name: 'vipmesh_controlplane_master_deposed_total',
          help: "Times this server revoked an unreachable master's election lease, by master",
          labelNames: ['master'],
          registers: [o.registry],
        });
    }
  }

  start(): void {
    this.#schedule();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Rounds start every `intervalMs` (a round that took longer is followed at once). */
  #schedule(delayMs = this.#o.intervalMs ?? 100): void {
    if (this.#closed) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      const started = this.#clock.now();
      this.tick()
        .catch((err: unknown) => this.#o.logger.debug({ err }, 'master watch: a round failed'))
        .finally(() =>
          this.#schedule(Math.max(0, (this.#o.intervalMs ?? 100) - (this.#clock.now() - started))),
        );
    }, delayMs);
  }

  /** One round: know the master, probe it, depose it after enough failures. Exposed for tests. */
  async tick(): Promise<void> {
    if (this.#o.isMaster()) {
      this.#master = undefined;
      this.#failures = 0;
      return;
    }
    const now = this.#clock.now();
    if (this.#master === undefined || now - this.#readAt >= (this.#o.refreshMs ?? 2000)) {
      const seen = await this.#readMaster();
      // Failures count against one campaign: a new master starts from none.
      if (seen?.lease !== this.#master?.lease) this.#failures = 0;
      this.#master = seen;
      this.#readAt = now;
    }
    const m = this.#master;
    if (m === undefined || m.name === this.#o.self || m.address === undefined) return;
    if (await this.#probe(m.address, this.#o.timeoutMs ?? 100)) {
      this.#failures = 0;
      return;
    }
    this.#failures++;
    if (this.#failures < (this.#o.misses ?? 3)) return;
    // Say so, then count: only when most servers (the master among them, which never agrees) cannot reach
    // the master is it deposed. One server whose own path to the master is broken deposes nobody, and
    // two servers that cannot reach each other but reach etcd do not take the role from each other in turn.
    await this.#suspect(m).catch((err: unknown) =>
      this.#o.logger.debug({ err }, 'master watch: the suspicion is not written (yet)'),
    );
    const [suspects, servers] = await Promise.all([
      this.#count(`${SUSPECTS_PREFIX}${m.lease}/`),
      this.#count(SERVERS_PREFIX),
    ]);
    if (this.#warnedFor !== m.lease) {
      this.#warnedFor = m.lease;
      this.#o.logger.warn(
        {
          master: m.name,
          address: `${m.address.host}:${m.address.port}`,
          failures: this.#failures,
          suspects,
          servers,
        },
        'the master does not answer; it is deposed once most servers say so',
      );
    }
    if (suspects * 2 <= servers) return;
    this.#o.logger.warn(
      { master: m.name, suspects, servers },
      'most servers cannot reach the master; revoking its election lease so that the next server takes over',
    );
    // A proposal: it commits only with etcd's quorum (a member without a leader drops it, and the call
    // fails at its deadline; the next round tries again), so a cluster below quorum deposes nobody. A
    // lease already gone is refused, harmlessly.
    // Read the election again next round, whatever the answer: the next master, or the same still (no
    // etcd leader yet: the failures are kept, so the next round tries again at once).
    this.#readAt = Number.NEGATIVE_INFINITY;
    try {
      await this.#o.etcd.leaseClient.leaseRevoke(
        { ID: m.lease },
        this.#deadline(this.#o.writeTimeoutMs ?? 150),
      );
    } catch (err) {
      // Another server revoked it first: done.
      if (err instanceof EtcdLeaseInvalidError) return;
      throw err;
    }
    this.#revoked?.inc({ master: m.name });
  }

  /** Record, for a few seconds, that this server cannot reach master `m`. */
  async #suspect(m: MasterSeen): Promise<void> {
    const write = () => this.#deadline(this.#o.writeTimeoutMs ?? 150);
    const { ID } = await this.#o.etcd.leaseClient.leaseGrant({ TTL: SUSPECT_TTL_SECONDS }, write());
    await this.#o.etcd
      .put(`${SUSPECTS_PREFIX}${m.lease}/${this.#o.self}`)
      .value(m.name)
      .lease(ID)
      .options(write())
      .exec();
  }

  /** Keys under `prefix`, counted by the local member. */
  async #count(prefix: string): Promise<number> {
    return this.#o.etcd.getAll().prefix(prefix).serializable(true).options(this.#deadline()).count();
  }

  /** A deadline for one of this watch's etcd calls (without a leader etcd would hold it as long as asked). */
  #deadline(ms = this.#o.callTimeoutMs ?? 500): { deadline: Date } {
    return { deadline: new Date(Date.now() + ms) };
  }

  /**
   * The oldest campaign in the election (the master), with the address its liveness key gives. Read from
   * the local member (serializable): no quorum needed, and no linearizable read kept waiting in etcd when
   * there is none, where it would hold up the API's reads. A stale answer only names a lease that is gone.
   */
  async #readMaster(): Promise<MasterSeen | undefined> {
    const res = await this.#o.etcd
      .namespace(`election/${ELECTION_NAME}/`)
      .getAll()
      .sort('Create', 'Ascend')
      .limit(1)
      .serializable(true)
      .options(this.#deadline())
      .exec();
    const kv = res.kvs[0];
    if (kv === undefined) return undefined;
    const name = kv.value.toString();
    const live = await this.#o.etcd
      .get(`${SERVERS_PREFIX}${name}`)
      .serializable(true)
      .options(this.#deadline())
      .string();
    return { name, lease: kv.lease, address: live === null ? undefined : decodeLiveness(live) };
  }
}
