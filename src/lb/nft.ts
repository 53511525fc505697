/**
 * Programs the table with the real `nft` and keeps it there. A whole table (the first apply, a restore)
 * is one `nft -f -` transaction; a difference goes through a long-lived `nft -i` when one is given
 * (src/lb/nft-session.ts: no process start and no cache reload per update), else through `nft -f -` too.
 * A periodic compare on the Clock notices a table someone flushed, deleted or edited by hand and replaces
 * it whole. The compare was chosen over `nft monitor` because it catches every kind of edit with one
 * listing and needs no event parsing; the cost is one `nft list table` after each update, off the
 * update's path, and one per interval (about 40 ms of nft CPU at 1,000 Services × 10 endpoints).
 */
import type { Clock, TimerHandle } from '../clock.js';
import { VipmeshError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RunCommand } from './command.js';
import type { NftSession } from './nft-session.js';
import { emptyRuleset, type Ruleset } from './render.js';
import { deleteScript, diffScript, fullScript, type Script, TABLE } from './script.js';

/** Options of {@link NftTable}. Defaults in brackets. */
export interface NftTableOptions {
  run: RunCommand;
  clock: Clock;
  logger: Logger;
  /** How often the kernel's table is compared with what was applied [10 s]. */
  verifyIntervalMs?: number;
  /** The nft binary [`nft`]. */
  nft?: string;
  /**
   * A long-lived `nft -i` for the differences (no process start, nft's cache kept); without it every
   * update is an `nft -f`. Whole tables (first apply, restore, a refused difference) always go through
   * `nft -f`, whose errors name a line and so a Service.
   */
  session?: NftSession;
}

/** What one {@link NftTable.apply} did. */
export interface ApplyResult {
  /** `diff`: only what changed; `full`: the whole table; `none`: nothing had changed. */
  mode: 'diff' | 'full' | 'none';
  /** Services nft refused (each error names the Service and carries nft's message); the rest is in place. */
  errors: VipmeshError[];
  /** Time spent in the nft transactions (the update's cost; the listing kept for the compare excluded). */
  nftMs: number;
}

/** How long after an update the listing for the compare is taken. */
export const LISTING_DELAY_MS = 100;

/** The lines of nft's error output that point at a script line (`/dev/stdin:12:5-9: Error: ...`). */
const ERROR_LINE = /:(\d+):\d+(?:-\d+)?: Error: (.*)/g;

/** Drop the contents of named sets (the ClientIP affinity entries come and go by themselves). */
export function stripSetElements(listing: string): string {
  const out: string[] = [];
  let inSet = false;
  let inElements = false;
  for (const line of listing.split('\n')) {
    const t = line.trim();
    if (inElements) {
      if (t.endsWith('}')) inElements = false;
      continue;
    }
    if (/^set \S+ \{$/.test(t)) inSet = true;
    else if (/^(map|chain) \S+ \{$/.test(t)) inSet = false;
    if (inSet && t.startsWith('elements = {')) {
      inElements = !t.endsWith('}');
      continue;
    }
    out.push(line);
  }
  return out.join('\n');
}

/** The model without the given Services' chains, sets and map elements. */
function without(rs: Ruleset, services: ReadonlySet<string>): Ruleset {
  const out = emptyRuleset();
  for (const [n, c] of rs.chains) if (!services.has(c.service)) out.chains.set(n, c);
  for (const [n, s] of rs.sets) if (!services.has(s.service)) out.sets.set(n, s);
  for (const f of [4, 6] as const) {
    for (const [el, chain] of rs.elements[f]) if (out.chains.has(chain)) out.elements[f].set(el, chain);
  }
  return out;
}

/** The table vipmesh owns, kept equal to the last model applied. */
export class NftTable {
  readonly #o: NftTableOptions;
  readonly #nft: string;
  /** What the kernel holds (undefined: unknown, the next apply replaces the table whole). */
  #applied: Ruleset | undefined;
  /** The listing taken right after the last apply: what the periodic compare expects. */
  #listing: string | undefined;
  #timer: TimerHandle | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #stopped = false;

  constructor(o: NftTableOptions) {
    this.#o = o;
    this.#nft = o.nft ?? 'nft';
  }

  /** Serialise kernel work: an apply, a compare and a removal never interleave. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#chain.then(fn);
    this.#chain = p.catch(() => undefined);
    return p;
  }

  /** Milliseconds spent in `nft -f` since the current apply began. */
  #spent = 0;

  async #exec(
    script: Script,
  ): Promise<{ ok: true } | { ok: false; errors: Array<{ service?: string; message: string }> }> {
    const t0 = this.#o.clock.now();
    const r = await this.#o.run(this.#nft, ['-f', '-'], `${script.lines.join('\n')}\n`);
    this.#spent += this.#o.clock.now() - t0;
    if (r.code === 0) return { ok: true };
    const errors: Array<{ service?: string; message: string }> = [];
    for (const m of r.stderr.matchAll(ERROR_LINE)) {
      const service = script.owners[Number(m[1]) - 1];
      errors.push({ ...(service === undefined ? {} : { service }), message: m[2]!.trim() });
    }
    if (errors.length === 0) errors.push({ message: r.stderr.trim() || `nft exited with ${r.code}` });
    return { ok: false, errors };
  }

  /** A difference: through the session when there is one, else like a whole script. */
  async #execDiff(
    script: Script,
  ): Promise<{ ok: true } | { ok: false; errors: Array<{ service?: string; message: string }> }> {
    const session = this.#o.session;
    if (session === undefined) return this.#exec(script);
    const t0 = this.#o.clock.now();
    const r = await session.run(script.lines);
    this.#spent += this.#o.clock.now() - t0;
    return r.ok ? r : { ok: false, errors: [{ message: r.message }] };
  }

  /**
   * Make the kernel's table equal `rs`: the difference from what was applied when that is known, else the
   * whole table. Services nft refuses are left out (and returned as errors naming them) so that one bad
   * Service never keeps the others from being served; a failure of the fixed part throws
   * `VIPMESH_LB_NFT_FAILED`.
   */
  apply(rs: Ruleset): Promise<ApplyResult> {
    return this.#serial(async () => {
      const prev = this.#applied;
      this.#spent = 0;
      if (prev !== undefined) {
        const d = diffScript(prev, rs);
        if (d.lines.length === 0) return { mode: 'none', errors: [], nftMs: 0 };
        const r = await this.#execDiff(d);
        if (r.ok) {
          this.#applied = rs;
          const nftMs = this.#spent;
          this.#refreshListing();
          return { mode: 'diff', errors: [], nftMs };
        }
        // The transaction was rolled back; the whole table, below, says which Services nft refuses.
        this.#o.logger.warn({ errors: r.errors }, 'nft refused an update; replacing the whole table');
      }
      const errors: VipmeshError[] = [];
      let model = rs;
      for (;;) {
        const r = await this.#exec(fullScript(model));
        if (r.ok) break;
        const bad = new Set(r.errors.map((e) => e.service).filter((s): s is string => s !== undefined));
        if (bad.size === 0 || [...bad].every((s) => errors.some((e) => e.details['service'] === s))) {
          this.#applied = undefined;
          throw new VipmeshError(
            'VIPMESH_LB_NFT_FAILED',
            `nft refused the ${TABLE} table: ${r.errors.map((e) => e.message).join('; ')}`,
            { details: { errors: r.errors } },
          );
        }
        for (const e of r.errors) {
          if (e.service === undefined) continue;
          errors.push(
            new VipmeshError('VIPMESH_LB_NFT_FAILED', `Service ${e.service}: nft: ${e.message}`, {
              details: { service: e.service, nft: e.message },
            }),
          );
        }
        model = without(model, bad);
      }
      this.#applied = model;
      const nftMs = this.#spent;
      this.#refreshListing();
      this.#warmSession();
      return { mode: 'full', errors, nftMs };
    });
  }

  /**
   * Start the kept `nft -i` now, with the table in its cache, unless it runs: the first difference would
   * otherwise pay for the process start and the cache load (50-60 ms in a namespace here), and that first
   * difference is often a failover's, the Services of the VIPs this node takes over.
   */
  #warmSession(): void {
    const session = this.#o.session;
    if (session === undefined || session.running) return;
    void session.run([`list table ${TABLE}`]);
  }

  async #list(): Promise<string | undefined> {
    const r = await this.#o.run(this.#nft, ['list', 'table', ...TABLE.split(' ')]);
    return r.code === 0 ? stripSetElements(r.stdout) : undefined;
  }

  /** Bumped by every change of the table: a listing taken across a change is not kept. */
  #generation = 0;
  /** The listing in progress, if any. */
  #listingRun: Promise<void> | undefined;
  /** The listing waiting for {@link LISTING_DELAY_MS} to pass, if any. */
  #listingTimer: TimerHandle | undefined;

  /**
   * Take the listing the compare expects, a moment after the update has returned: an update never waits
   * for it (at 1,000 Services the listing costs several times a one-Service update), nor does what its
   * caller does next (starting `nft list` blocks the event loop for a few ms, and after a failover's
   * update the agent announces the VIPs). An update that lands meanwhile makes it start over.
   */
  #refreshListing(): void {
    this.#generation++;
    this.#listing = undefined;
    if (this.#listingRun !== undefined || this.#listingTimer !== undefined || this.#stopped) return;
    this.#listingTimer = this.#o.clock.setTimeout(() => {
      this.#listingTimer = undefined;
      this.#startListing();
    }, LISTING_DELAY_MS);
  }

  /** Take the listing now if it is waiting for its delay. */
  #listingNow(): void {
    if (this.#listingTimer === undefined) return;
    this.#o.clock.clearTimeout(this.#listingTimer);
    this.#listingTimer = undefined;
    this.#startListing();
  }

  #startListing(): void {
    if (this.#listingRun !== undefined) return;
    this.#listingRun = (async () => {
      while (!this.#stopped) {
        const g = this.#generation;
        const listing = await this.#list();
        if (g === this.#generation) {
          this.#listing = listing;
          break;
        }
      }
      this.#listingRun = undefined;
    })();
  }

  /** Resolves when the listing taken after the last update is in (benchmarks and tests). */
  async settled(): Promise<void> {
    this.#listingNow();
    while (this.#listingRun !== undefined) await this.#listingRun;
  }

  async #snapshot(): Promise<void> {
    this.#refreshListing();
    await this.settled();
  }

  /** Start comparing the kernel's table with the applied one every `verifyIntervalMs`. */
  start(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    const tick = () => {
      this.#timer = this.#o.clock.setTimeout(() => {
        void this.verify()
          .catch((err: unknown) => this.#o.logger.error({ err }, 'cannot restore the nftables table'))
          .finally(() => {
            if (!this.#stopped) tick();
          });
      }, this.#o.verifyIntervalMs ?? 10_000);
    };
    tick();
  }

  /** Compare once; when the table differs from what was applied, replace it whole. True when it did. */
  verify(): Promise<boolean> {
    return this.#serial(async () => {
      const want = this.#applied;
      if (want === undefined || this.#stopped) return false;
      await this.settled();
      const now = await this.#list();
      if (now !== undefined && now === this.#listing) return false;
      this.#o.logger.warn(
        { table: TABLE, found: now === undefined ? 'missing' : 'changed' },
        'the nftables table was changed outside vipmesh; restoring it',
      );
      const r = await this.#exec(fullScript(want));
      if (!r.ok) {
        throw new VipmeshError(
          'VIPMESH_LB_NFT_FAILED',
          `cannot restore ${TABLE}: ${r.errors.map((e) => e.message).join('; ')}`,
        );
      }
      await this.#snapshot();
      return true;
    });
  }

  /** Stop comparing and delete the table. */
  remove(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#listingTimer !== undefined) this.#o.clock.clearTimeout(this.#listingTimer);
    this.#listingTimer = undefined;
    this.#o.session?.close();
    return this.#serial(async () => {
      this.#applied = undefined;
      await this.#listingRun;
      const r = await this.#exec(deleteScript());
      if (!r.ok) {
        throw new VipmeshError(
          'VIPMESH_LB_NFT_FAILED',
          `cannot remove ${TABLE}: ${r.errors.map((e) => e.message).join('; ')}`,
        );
      }
    });
  }
}
