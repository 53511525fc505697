import { inRange, type KeyRange } from './keys.js';
import type { Event } from './types.js';

/** WatchCreateRequest.FilterType */
const WatchFilter = { NOPUT: 0, NODELETE: 1 } as const;

/** One watcher as the hub sees it. */
export interface HubWatcher {
  range: KeyRange;
  /** Filter types to drop (NOPUT, NODELETE). */
  filters: readonly number[];
  prevKv: boolean;
  /** The first revision not yet delivered. */
  nextRev: number;
  /** False while the watcher replays history from the database; the hub skips it. */
  synced: boolean;
  /** Deliver matching events (already filtered), all at revisions >= nextRev. */
  deliver(events: Event[], rev: number): void;
}

/** Events of committed writes, fanned out in revision order to every synced watcher (no polling). */
export class WatchHub {
  readonly #watchers = new Set<HubWatcher>();

  add(w: HubWatcher): void {
    this.#watchers.add(w);
  }

  remove(w: HubWatcher): void {
    this.#watchers.delete(w);
  }

  get size(): number {
    return this.#watchers.size;
  }

  /** Publish the events of one committed batch (in revision order); `rev` is the revision after it. */
  publish(events: readonly Event[], rev: number): void {
    if (events.length === 0) return;
    for (const w of this.#watchers) {
      if (!w.synced) continue;
      const out = matching(w, events);
      w.nextRev = rev + 1;
      if (out.length > 0) w.deliver(out, rev);
    }
  }
}

/** The events `w` wants from `events`, shaped as it asked (prev_kv only on request). */
export function matching(w: HubWatcher, events: readonly Event[]): Event[] {
  const out: Event[] = [];
  for (const ev of events) {
    if (Number(ev.kv.mod_revision) < w.nextRev) continue;
    if (!inRange(w.range, ev.kv.key)) continue;
    if (ev.type === 0 && w.filters.includes(WatchFilter.NOPUT)) continue;
    if (ev.type === 1 && w.filters.includes(WatchFilter.NODELETE)) continue;
    out.push(w.prevKv || ev.prev_kv === undefined ? ev : { type: ev.type, kv: ev.kv });
  }
  return out;
}
