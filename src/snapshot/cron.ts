import { VipmeshError } from '../errors.js';

/** k3s's default: every 12 hours, on the hour. */
export const DEFAULT_SCHEDULE = '0 */12 * * *';

const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day of week', min: 0, max: 7 },
] as const;

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/** Days searched for a match: long enough to cross any leap year (`0 0 29 2 *`). */
const SEARCH_DAYS = 366 * 8;

/**
 * A standard five-field cron expression (minute hour day-of-month month day-of-week, in local time), with
 * `*`, ranges `a-b`, steps (`a-b/n`, or a star then `/n`), lists and the `@daily`-style macros, as k3s's `--etcd-snapshot-schedule-cron`
 * takes. As in Vixie cron, when both day fields are restricted a day matching either one runs.
 */
export class CronSchedule {
  readonly expression: string;
  readonly #sets: Array<Set<number>>;
  readonly #domStar: boolean;
  readonly #dowStar: boolean;

  constructor(expression: string) {
    this.expression = expression;
    const text = MACROS[expression.trim()] ?? expression.trim();
    const parts = text.split(/\s+/);
    if (parts.length !== 5) {
      throw bad(
        expression,
        `has ${parts.length} fields; want 5 (minute hour day-of-month month day-of-week)`,
      );
    }
    this.#sets = parts.map((p, i) => parseField(expression, p, FIELDS[i]!));
    const dow = this.#sets[4]!;
    if (dow.has(7)) dow.add(0);
    this.#domStar = parts[2] === '*' || parts[2] === '?';
    this.#dowStar = parts[4] === '*' || parts[4] === '?';
  }

  /** The first run strictly after `afterMs` (epoch milliseconds), or undefined when none comes. */
  next(afterMs: number): number | undefined {
    const start = new Date(afterMs);
    start.setSeconds(0, 0);
    start.setMinutes(start.getMinutes() + 1);
    const [minutes, hours, , months] = this.#sets as [Set<number>, Set<number>, Set<number>, Set<number>];
    const day = new Date(start);
    for (let i = 0; i < SEARCH_DAYS; i++) {
      if (months.has(day.getMonth() + 1) && this.#dayMatches(day)) {
        const sameDay = i === 0;
        for (let h = sameDay ? start.getHours() : 0; h < 24; h++) {
          if (!hours.has(h)) continue;
          for (let m = sameDay && h === start.getHours() ? start.getMinutes() : 0; m < 60; m++) {
            if (!minutes.has(m)) continue;
            const at = new Date(day.getFullYear(), day.getMonth(), day.getDate(), h, m, 0, 0).getTime();
            if (at > afterMs) return at;
          }
        }
      }
      day.setHours(0, 0, 0, 0);
      day.setDate(day.getDate() + 1);
    }
    return undefined;
  }

  #dayMatches(d: Date): boolean {
    const dom = this.#sets[2]!.has(d.getDate());
    const dow = this.#sets[4]!.has(d.getDay());
    if (this.#domStar) return dow;
    if (this.#dowStar) return dom;
    return dom || dow;
  }
}

function parseField(expr: string, text: string, f: (typeof FIELDS)[number]): Set<number> {
  const out = new Set<number>();
  for (const item of text.split(',')) {
    const m = /^(\*|\?|\d+(?:-\d+)?)(?:\/(\d+))?$/.exec(item);
    if (m === null) throw bad(expr, `${f.name} "${item}" is not a number, range, * or step`);
    const [, base, stepText] = m as unknown as [string, string, string | undefined];
    let lo: number = f.min;
    let hi: number = f.name === 'day of week' ? 6 : f.max;
    if (base !== '*' && base !== '?') {
      const [a, b] = base.split('-').map(Number) as [number, number | undefined];
      lo = a;
      hi = b ?? (stepText === undefined ? a : hi);
    }
    const step = stepText === undefined ? 1 : Number(stepText);
    if (lo < f.min || hi > f.max || lo > hi) {
      throw bad(expr, `${f.name} "${item}" is outside ${f.min}-${f.max}`);
    }
    if (step < 1) throw bad(expr, `${f.name} "${item}" has a step of 0`);
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

function bad(expr: string, why: string): VipmeshError {
  return new VipmeshError('VIPMESH_SNAPSHOT_BAD_FLAG', `--snapshot-schedule "${expr}" ${why}`, {
    details: { field: 'snapshot-schedule' },
  });
}
