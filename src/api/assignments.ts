/**
 * Where the announcer assignment is stored: one datastore key per VIP, `/vipmesh/assignments/<vip>`, whose
 * value names the node holding it (and the interfaces to announce it on). A failover that moves N VIPs
 * writes N small keys in batches of {@link MAX_BATCH_OPS} (a few dozen transactions, committed together),
 * and every reader follows the prefix with one watch: nothing rewrites or resends a node's whole list.
 * The elected master is the only writer.
 */
import { EventEmitter } from 'node:events';
import { type Clock, systemClock } from '../clock.js';
import type { Logger } from '../log.js';
import { VIP_INTERFACES } from './agent-protocol.js';
import { type Kv, type KvOp, type KvWatch, MAX_BATCH_OPS } from './kv.js';
import type { KubeObject, Node } from './types.js';

/** Prefix of the assignment keys. */
export const ASSIGNMENTS_PREFIX = '/vipmesh/assignments/';

/** Who holds one VIP. */
export interface VipHolder {
  node: string;
  /** Interfaces to announce on; absent: every interface. */
  interfaces?: string[];
}

/** One VIP whose holder changed: `before`/`after` undefined when it had or has none. */
export interface HolderChange {
  vip: string;
  before: VipHolder | undefined;
  after: VipHolder | undefined;
}

/** The value stored for `holder`. */
export function encodeHolder(holder: VipHolder): Buffer {
  return Buffer.from(JSON.stringify(holder));
}

/** The holder in a stored value, or undefined when it is not one (written by something else). */
export function decodeHolder(value: Buffer): VipHolder | undefined {
  let v: unknown;
  try {
    v = JSON.parse(value.toString());
  } catch {
    return undefined;
  }
  const o = v as { node?: unknown; interfaces?: unknown };
  if (typeof o !== 'object' || o === null || typeof o.node !== 'string' || o.node === '') return undefined;
  if (o.interfaces === undefined) return { node: o.node };
  if (!Array.isArray(o.interfaces) || !o.interfaces.every((i) => typeof i === 'string')) return undefined;
  return { node: o.node, interfaces: [...o.interfaces] };
}

/** True when `a` and `b` say the same (node and interfaces, in order). */
export function sameHolder(a: VipHolder | undefined, b: VipHolder | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.node !== b.node) return false;
  const ai = a.interfaces;
  const bi = b.interfaces;
  if (ai === undefined || bi === undefined) return ai === bi;
  return ai.length === bi.length && ai.every((x, i) => x === bi[i]);
}

/** Datastore transactions a {@link writeHolders} keeps in flight (the datastore commits them together). */
const WRITES_IN_FLIGHT = 8;

/**
 * Store each VIP's new holder (undefined: delete its key), in transactions of {@link MAX_BATCH_OPS}
 * writes, {@link WRITES_IN_FLIGHT} at a time. Returns the number of transactions and the highest revision
 * written (0: nothing was).
 */
export async function writeHolders(
  kv: Kv,
  writes: ReadonlyArray<{ vip: string; holder: VipHolder | undefined }>,
): Promise<{ transactions: number; revision: number }> {
  const batches: KvOp[][] = [];
  for (let i = 0; i < writes.length; i += MAX_BATCH_OPS) {
    batches.push(
      writes
        .slice(i, i + MAX_BATCH_OPS)
        .map(({ vip, holder }) =>
          holder === undefined
            ? { key: `${ASSIGNMENTS_PREFIX}${vip}` }
            : { key: `${ASSIGNMENTS_PREFIX}${vip}`, value: encodeHolder(holder) },
        ),
    );
  }
  let next = 0;
  let revision = 0;
  const worker = async () => {
    while (next < batches.length) revision = Math.max(revision, await kv.batch(batches[next++]!));
  };
  await Promise.all(Array.from({ length: Math.min(WRITES_IN_FLIGHT, batches.length) }, worker));
  return { transactions: batches.length, revision };
}

/** Options of {@link AssignmentIndex}. */
interface AssignmentIndexOptions {
  kv: Kv;
  logger: Logger;
  /** Time source for the pause before listing again after the watch ended [the system clock]. */
  clock?: Clock;
}

/** Pause before listing the prefix again after its watch ended. */
const RESYNC_DELAY_MS = 500;

/**
 * Every VIP's holder as the datastore has it, kept by listing the prefix once and watching it: by VIP and
 * by node. On the master, the holders it is writing are shown from the moment the write starts
 * ({@link AssignmentIndex.ahead}), so its relay pushes them while they commit. Emits `change` with the VIPs whose holder changed, the changes of one event-loop turn together
 * (a batch of writes arrives as one array). After the watch ends (compaction, datastore lost) it lists
 * again and emits the difference.
 */
export class AssignmentIndex extends EventEmitter<{ change: [changes: HolderChange[]] }> {
  readonly #o: AssignmentIndexOptions;
  readonly #clock: Clock;
  readonly #byVip = new Map<string, VipHolder>();
  readonly #byNode = new Map<string, Map<string, VipHolder>>();
  #pending = new Map<string, VipHolder | undefined>();
  /** VIP -> its holder as stored, for the VIPs shown {@link ahead} of the datastore (written, not yet seen back). */
  readonly #stored = new Map<string, VipHolder | undefined>();
  #flushQueued = false;
  #watch: KvWatch | undefined;
  #closed = false;
  /** The datastore revision the index has caught up with. */
  #revision = 0;
  #waiters: Array<{ revision: number; resolve: () => void }> = [];

  constructor(o: AssignmentIndexOptions) {
    super();
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
  }

  /** List the prefix and follow it. Resolves once the list is loaded. */
  async start(): Promise<void> {
    await this.#sync();
  }

  /** The holder of `vip`, if any. */
  holder(vip: string): VipHolder | undefined {
    return this.#byVip.get(vip);
  }

  /** The VIPs `node` holds, with their interfaces. */
  vipsOf(node: string): ReadonlyMap<string, VipHolder> {
    return this.#byNode.get(node) ?? EMPTY;
  }

  /** Resolves once the index has seen the datastore at `revision` (a write's own revision) or later. */
  caughtUp(revision: number): Promise<void> {
    if (this.#revision >= revision || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ revision, resolve }));
  }

  /**
   * The master is writing `writes`: show them now, so the relays push them while the write commits. Each
   * VIP's own watch event ends its lead (whatever it says wins); {@link retract} takes back the writes that
   * failed.
   */
  ahead(writes: ReadonlyArray<{ vip: string; holder: VipHolder | undefined }>): void {
    if (this.#closed) return;
    for (const { vip, holder } of writes) {
      if (!this.#stored.has(vip)) this.#stored.set(vip, this.#byVip.get(vip));
      this.#note(vip, holder);
    }
    this.#flush(this.#revision);
  }

  /** The write of `writes` failed: each VIP not seen back since goes back to its stored holder. */
  retract(writes: ReadonlyArray<{ vip: string }>): void {
    if (this.#closed) return;
    for (const { vip } of writes) {
      if (!this.#stored.has(vip)) continue;
      const holder = this.#stored.get(vip);
      this.#stored.delete(vip);
      this.#note(vip, holder);
    }
    this.#flush(this.#revision);
  }

  /** Every VIP with a holder. */
  get all(): ReadonlyMap<string, VipHolder> {
    return this.#byVip;
  }

  async #sync(): Promise<void> {
    const { pairs, revision } = await this.#o.kv.list(ASSIGNMENTS_PREFIX);
    if (this.#closed) return;
    const seen = new Set<string>();
    // A fresh list is the datastore's word on every VIP, those shown ahead of it too.
    this.#stored.clear();
    for (const p of pairs) {
      const vip = p.key.slice(ASSIGNMENTS_PREFIX.length);
      seen.add(vip);
      this.#note(vip, this.#decode(p.key, p.value));
    }
    for (const vip of this.#byVip.keys()) if (!seen.has(vip)) this.#note(vip, undefined);
    this.#flush(revision);
    this.#watch = await this.#o.kv.watch(ASSIGNMENTS_PREFIX, revision + 1, {
      event: (e) => {
        const vip = e.key.slice(ASSIGNMENTS_PREFIX.length);
        this.#stored.delete(vip);
        this.#note(vip, e.type === 'delete' ? undefined : this.#decode(e.key, e.value));
        this.#queueFlush(e.modRevision);
      },
      error: (err) => {
        this.#o.logger.warn({ err: err.message }, 'assignment watch ended; listing again');
        this.#resync();
      },
    });
  }

  #decode(key: string, value: Buffer): VipHolder | undefined {
    const h = decodeHolder(value);
    if (h === undefined) this.#o.logger.warn({ key }, 'ignoring an assignment key that names no node');
    return h;
  }

  #resync(): void {
    if (this.#closed) return;
    void this.#watch?.close().catch(() => undefined);
    this.#watch = undefined;
    this.#clock.setTimeout(() => {
      this.#sync().catch(() => this.#resync());
    }, RESYNC_DELAY_MS);
  }

  /** Record `vip`'s new holder now; the change is emitted with the next flush. */
  #note(vip: string, holder: VipHolder | undefined): void {
    const before = this.#byVip.get(vip);
    if (!this.#pending.has(vip)) this.#pending.set(vip, before);
    if (before !== undefined) {
      const m = this.#byNode.get(before.node);
      m?.delete(vip);
      if (m?.size === 0) this.#byNode.delete(before.node);
    }
    if (holder === undefined) {
      this.#byVip.delete(vip);
      return;
    }
    this.#byVip.set(vip, holder);
    let m = this.#byNode.get(holder.node);
    if (m === undefined) {
      m = new Map();
      this.#byNode.set(holder.node, m);
    }
    m.set(vip, holder);
  }

  #queueFlush(revision: number): void {
    this.#pendingRevision = Math.max(this.#pendingRevision, revision);
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    setImmediate(() => {
      this.#flushQueued = false;
      this.#flush(this.#pendingRevision);
    });
  }

  #pendingRevision = 0;

  #flush(revision: number): void {
    if (this.#closed) return;
    const changes: HolderChange[] = [];
    for (const [vip, before] of this.#pending) {
      const after = this.#byVip.get(vip);
      if (!sameHolder(before, after)) changes.push({ vip, before, after });
    }
    this.#pending = new Map();
    this.#revision = Math.max(this.#revision, revision);
    if (changes.length > 0) this.emit('change', changes);
    const due = this.#waiters.filter((w) => w.revision <= this.#revision);
    this.#waiters = this.#waiters.filter((w) => w.revision > this.#revision);
    for (const w of due) w.resolve();
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#waiters) w.resolve();
    this.#waiters = [];
    await this.#watch?.close();
  }
}

const EMPTY: ReadonlyMap<string, VipHolder> = new Map();

/**
 * The API's view of a Node: its `status.vips` (sorted) and `status.vipInterfaces` filled in from the
 * assignment keys, so `vipmesh get nodes`, `describe node` and kubectl show each node's VIPs. They are not
 * stored on the Node; a Node without keys is shown as stored. Other resources pass through.
 */
export function nodeVipsView(holders: Pick<AssignmentIndex, 'vipsOf'>) {
  return (resource: string, obj: KubeObject): KubeObject => {
    if (resource !== 'nodes') return obj;
    const node = obj as Node;
    const held = holders.vipsOf(node.metadata.name);
    if (held.size === 0) return obj;
    const vips = [...held.keys()].sort();
    const ifs: Record<string, string[]> = {};
    for (const [vip, h] of held) if (h.interfaces !== undefined) ifs[vip] = h.interfaces;
    const status: NonNullable<Node['status']> = { ...(node.status ?? {}), vips };
    if (Object.keys(ifs).length > 0) status[VIP_INTERFACES] = ifs;
    return { ...node, status };
  };
}
