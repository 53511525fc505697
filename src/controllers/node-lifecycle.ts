import { type NodeRegistration, REASON_AGENT_STOPPING } from '../api/agent-protocol.js';
import type { ResourceStore } from '../api/store.js';
import type { Condition, Node } from '../api/types.js';
import { type Clock, systemClock } from '../clock.js';
import { isVipmeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { Periodic } from './informer.js';

/** Annotation naming the server that holds the node's tunnel session (the one that decides its readiness). */
export const SERVER_ANNOTATION = 'vipmesh.io/server';

/** Options of {@link NodeLifecycle}. */
interface NodeLifecycleOptions {
  store: ResourceStore;
  /** This server's name (`--node-name`): written to {@link SERVER_ANNOTATION}. */
  server: string;
  /** True when this server has a tunnel session to `node` now. */
  hasSession: (node: string) => boolean;
  /** The Nodes as stored now (an informer's items). */
  nodes: () => Iterable<Node>;
  /** Whether server `name` is alive (its liveness key exists); only asked while master. */
  serverAlive?: (name: string) => Promise<boolean> | boolean;
  /**
   * After a start (or becoming master), how long a Node marked Ready keeps that state without a session:
   * its agent is reconnecting to the restarted server [5 s].
   */
  graceMs?: number;
  /**
   * How long the nodes of a server that is gone keep their state once the master sees it gone [2 s]: their
   * sessions were held until that moment (the old server's session keys go with its liveness key), so
   * their agents get one or two reconnect attempts before a node is called lost.
   */
  serverGoneGraceMs?: number;
  /** How often the sweep runs [1 s]. */
  sweepMs?: number;
  /**
   * While master, delete a Node that has been NotReady (or never Ready) this long, which releases its pod
   * subnet [never]. A node that comes back registers again.
   */
  deleteNotReadyAfterMs?: number | undefined;
  /**
   * Where a verdict of lost is noted before its NotReady is written (the master's assignment moves the
   * node's VIPs on it), and lifted when no NotReady follows or the node's session is back.
   */
  verdicts?: { add(node: string): void; delete(node: string): void };
  logger: Logger;
  clock?: Clock;
}

/** `ms` as a condition's time: whole seconds, as Kubernetes writes them. */
export function conditionTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

function now(clock: Clock): string {
  return conditionTime(clock.now());
}

/** `conds` with the Ready condition set to `status` (transition time kept when it did not change). */
export function withReady(
  conds: Condition[] | undefined,
  status: 'True' | 'False',
  reason: string,
  message: string,
  at: string,
): Condition[] {
  const prev = (conds ?? []).find((c) => c.type === 'Ready');
  const ready: Condition = {
    type: 'Ready',
    status,
    reason,
    message,
    lastTransitionTime: prev?.status === status ? (prev.lastTransitionTime ?? at) : at,
    lastHeartbeatTime: at,
  };
  return [...(conds ?? []).filter((c) => c.type !== 'Ready'), ready];
}

/**
 * Node lifecycle, run by every server for the agents connected to it: a node whose tunnel session comes up
 * is registered (created or updated: labels, addresses, interfaces) and marked Ready; a node whose session
 * is lost (`--node-lost-after` missed heartbeats) is marked NotReady, unless it has meanwhile reconnected
 * (here or to another server); within the start grace, a node that was Ready before the start is left to the
 * sweep, which marks it NotReady only if it is still without a session when the grace ends. While master, the sweep also marks NotReady the nodes of servers that are gone.
 */
export class NodeLifecycle {
  readonly #o: NodeLifecycleOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #started: number;
  readonly #sweeps: Periodic;
  #masterSince: number | undefined;
  /** Server name -> when this master first saw it gone (cleared when it is alive again). */
  readonly #goneSince = new Map<string, number>();
  #stopping = false;
  #chain: Promise<void> = Promise.resolve();

  constructor(o: NodeLifecycleOptions) {
    this.#o = o;
    this.#log = o.logger;
    this.#clock = o.clock ?? systemClock;
    this.#started = this.#clock.now();
    this.#sweeps = new Periodic(() => this.sweep(), {
      intervalMs: o.sweepMs ?? 1000,
      onError: (err) => this.#log.warn({ err }, 'node sweep failed'),
      clock: this.#clock,
    });
  }

  /** Start the periodic sweep. */
  start(): void {
    this.#sweeps.start();
  }

  /** This server became master (true) or stopped being it (false). */
  setMaster(master: boolean): void {
    this.#masterSince = master ? this.#clock.now() : undefined;
    this.#goneSince.clear();
  }

  /**
   * This server is stopping: from now on a session that ends is the server going away, not its node (the
   * local agent leaves before the server does), so nothing is marked NotReady any more; the next start's
   * grace covers the agents' reconnect, and another master's sweep the nodes that never come back.
   */
  serverStopping(): void {
    this.#stopping = true;
  }

  /** Writes run one at a time, in order (a quick lost/seen pair must end Ready). */
  #serial(fn: () => Promise<unknown>): Promise<void> {
    const run = this.#chain
      .then(async () => void (await fn()))
      .catch((err: unknown) => {
        this.#log.error({ err }, 'node lifecycle write failed');
      });
    this.#chain = run;
    return run;
  }

  /** An agent's session came up: register the node and mark it Ready. */
  seen(name: string, reg: NodeRegistration): Promise<void> {
    this.#o.verdicts?.delete(name);
    return this.#serial(async () => {
      if (!this.#o.hasSession(name)) return;
      let node = await this.#get(name);
      const labels = { ...(node?.metadata.labels ?? {}), ...(reg.labels ?? {}) };
      const annotations = { ...(node?.metadata.annotations ?? {}), [SERVER_ANNOTATION]: this.#o.server };
      if (node === undefined) {
        node = await this.#o.store.create('nodes', {
          apiVersion: 'v1',
          kind: 'Node',
          metadata: { name, labels, annotations },
          spec: {},
        });
      } else if (
        JSON.stringify(labels) !== JSON.stringify(node.metadata.labels ?? {}) ||
        node.metadata.annotations?.[SERVER_ANNOTATION] !== this.#o.server
      ) {
        node = await this.#o.store.update('nodes', {
          ...node,
          metadata: { ...node.metadata, labels, annotations, resourceVersion: undefined },
        });
      }
      const status = { ...(node.status ?? {}) };
      status.conditions = withReady(
        status.conditions,
        'True',
        'AgentConnected',
        'the agent is connected',
        now(this.#clock),
      );
      if (reg.addresses !== undefined) status.addresses = reg.addresses;
      if (reg.nodeInfo !== undefined) status.nodeInfo = reg.nodeInfo;
      if (reg.interfaces !== undefined) status['interfaces'] = reg.interfaces;
      await this.#o.store.updateStatus('nodes', {
        ...node,
        metadata: { ...node.metadata, resourceVersion: undefined },
        status,
      });
      this.#log.info({ node: name }, 'node Ready');
    });
  }

  /** An agent's session ended: mark the node NotReady if this server still speaks for it. */
  lost(name: string, reason: string): Promise<void> {
    if (this.#stopping) {
      this.#log.info({ node: name, reason }, 'session ended while this server stops: node left Ready');
      return Promise.resolve();
    }
    const still = (n: Node) => this.#mine(n) && !this.#reconnectingAfterRestart(n, reason);
    const verdicts = this.#o.verdicts;
    // Judged from the informer's copy at once, so the VIPs move while the NotReady is being written.
    const cached = verdicts === undefined ? undefined : this.#cached(name);
    const judged = cached !== undefined && this.#wantsNotReady(cached, still);
    if (judged) verdicts!.add(name);
    return this.#serial(async () => {
      // The verdict kicked the assignment pass, which starts at the end of this turn: the NotReady write
      // waits behind it, so the pass plans and pushes the moved VIPs before this write takes the thread.
      if (judged) await new Promise<void>((resolve) => setImmediate(resolve));
      let written = false;
      try {
        written = await this.#markNotReady(name, reason, still);
      } finally {
        if (judged && !written) verdicts!.delete(name);
      }
    });
  }

  /**
   * The node's agent is stopping and asked to leave: mark it NotReady (reason `AgentStopping`) while its
   * session is still up, so the master moves its VIPs now and places nothing on it again. A later session
   * (the agent started again) marks it Ready as usual. False, and nothing written, while this server stops
   * (its own local agent leaving is the server going away: see `serverStopping`).
   */
  leaving(name: string): Promise<boolean> {
    if (this.#stopping) {
      this.#log.info({ node: name }, 'node asked to leave while this server stops: node left Ready');
      return Promise.resolve(false);
    }
    return this.#serial(() =>
      this.#markNotReady(
        name,
        'the agent is stopping and handed its VIPs over',
        () => this.#o.hasSession(name),
        REASON_AGENT_STOPPING,
      ),
    ).then(() => true);
  }

  /**
   * True for a node that was Ready before this server started, while the start grace lasts: its agent is
   * reconnecting to a server still busy starting, and such a session may be lost and made again more than
   * once; the sweep decides once the grace is over. A node that became Ready since the start is judged at once.
   */
  #reconnectingAfterRestart(n: Node, reason: string): boolean {
    if (this.#clock.now() - this.#started >= this.#graceMs) return false;
    const ready = n.status?.conditions?.find((c) => c.type === 'Ready');
    const since = Date.parse(ready?.lastTransitionTime ?? '');
    // Condition times have whole seconds: only a second wholly before the start counts as before it.
    if (!Number.isFinite(since) || since >= Math.floor(this.#started / 1000) * 1000) return false;
    this.#log.info(
      { node: n.metadata.name, reason },
      'session ended within the start grace: the sweep decides after it',
    );
    return true;
  }

  get #graceMs(): number {
    return this.#o.graceMs ?? 5000;
  }

  #mine(n: Node): boolean {
    return (
      n.metadata.annotations?.[SERVER_ANNOTATION] === this.#o.server && !this.#o.hasSession(n.metadata.name)
    );
  }

  async #markNotReady(
    name: string,
    reason: string,
    still: (n: Node) => boolean,
    code = 'NodeLost',
  ): Promise<boolean> {
    for (let attempt = 0; attempt < 5; attempt++) {
      // A failover waits on this write: the first attempt starts from the informer's copy, which saves a
      // read of the datastore. The write is conditional on that copy's version, so a stale copy costs a
      // conflict and a fresh read; a copy that says there is nothing to write is checked against a fresh read.
      const cached = attempt === 0 ? this.#cached(name) : undefined;
      const node =
        cached !== undefined && this.#wantsNotReady(cached, still) ? cached : await this.#get(name);
      if (node === undefined || !this.#wantsNotReady(node, still)) return false;
      const status = { ...(node.status ?? {}) };
      status.conditions = withReady(status.conditions, 'False', code, reason, now(this.#clock));
      try {
        // Conditional on the version read, so a reconnect written meanwhile is never overwritten.
        await this.#o.store.updateStatus('nodes', { ...node, status });
        this.#log.warn({ node: name, reason }, 'node NotReady');
        return true;
      } catch (err) {
        if (!isVipmeshError(err, 'VIPMESH_API_CONFLICT')) throw err;
      }
    }
    return false;
  }

  #wantsNotReady(node: Node, still: (n: Node) => boolean): boolean {
    return still(node) && node.status?.conditions?.find((c) => c.type === 'Ready')?.status !== 'False';
  }

  #cached(name: string): Node | undefined {
    for (const n of this.#o.nodes()) if (n.metadata.name === name) return n;
    return undefined;
  }

  async #get(name: string): Promise<Node | undefined> {
    try {
      return await this.#o.store.get('nodes', name);
    } catch (err) {
      if (isVipmeshError(err, 'VIPMESH_API_NOT_FOUND')) return undefined;
      throw err;
    }
  }

  /**
   * One sweep (exposed for tests): stale own nodes, and while master the nodes of dead servers and the
   * nodes NotReady for longer than `deleteNotReadyAfterMs`.
   */
  async sweep(): Promise<void> {
    const t = this.#clock.now();
    const grace = this.#graceMs;
    const alive = new Map<string, boolean>();
    const gcMs = this.#o.deleteNotReadyAfterMs;
    for (const n of this.#o.nodes()) {
      if (this.#stopping) return;
      const ready = n.status?.conditions?.find((c) => c.type === 'Ready');
      if (ready?.status !== 'True') {
        if (this.#masterSince !== undefined && gcMs !== undefined && gcMs > 0) {
          const since = Date.parse(ready?.lastTransitionTime ?? n.metadata.creationTimestamp ?? '');
          if (Number.isFinite(since) && t - since >= gcMs && !this.#o.hasSession(n.metadata.name)) {
            await this.#serial(() => this.#collect(n, gcMs));
          }
        }
        continue;
      }
      const owner = n.metadata.annotations?.[SERVER_ANNOTATION];
      const name = n.metadata.name;
      if (owner === this.#o.server) {
        if (t - this.#started < grace || this.#o.hasSession(name)) continue;
        await this.#serial(() =>
          this.#markNotReady(name, 'the agent did not reconnect after the server started', (x) =>
            this.#mine(x),
          ),
        );
      } else if (this.#masterSince !== undefined && t - this.#masterSince >= grace && owner !== undefined) {
        if (!alive.has(owner)) {
          const up = (await this.#o.serverAlive?.(owner)) ?? true;
          alive.set(owner, up);
          if (up) this.#goneSince.delete(owner);
          else if (!this.#goneSince.has(owner)) this.#goneSince.set(owner, t);
        }
        if (alive.get(owner)) continue;
        if (t - this.#goneSince.get(owner)! < (this.#o.serverGoneGraceMs ?? 2000)) continue;
        await this.#serial(() =>
          this.#markNotReady(
            name,
            `its server ${owner} is gone and the agent did not reconnect`,
            (x) => x.metadata.annotations?.[SERVER_ANNOTATION] === owner,
          ),
        );
      }
    }
  }

  /** Delete `n`, NotReady past `gcMs`, unless it changed since it was read (a reconnect). */
  async #collect(n: Node, gcMs: number): Promise<void> {
    const name = n.metadata.name;
    try {
      const rv = n.metadata.resourceVersion;
      await this.#o.store.delete('nodes', name, undefined, rv === undefined ? {} : { resourceVersion: rv });
    } catch (err) {
      if (isVipmeshError(err, 'VIPMESH_API_CONFLICT') || isVipmeshError(err, 'VIPMESH_API_NOT_FOUND')) return;
      throw err;
    }
    this.#log.warn(
      { node: name, notReadyForMs: gcMs },
      `deleted node ${name}: NotReady for longer than ${gcMs} ms (its pod subnet is released)`,
    );
  }

  /** Stop the sweep; waits for a sweep in progress and the writes queued. */
  async close(): Promise<void> {
    await this.#sweeps.close();
    await this.#chain;
  }
}
