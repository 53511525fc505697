/**
 * The performance goals, one row each, as the benchmarks measure them. A benchmark calls {@link recordGoal} where
 * it prints a figure that has a goal: the row is printed at once and, under `npm run bench`, appended to the
 * file named by VIPMESH_BENCH_GOALS, so bench/run.ts can print every goal of the run in one table at the end
 * ({@link goalsTable}).
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

/** The variable naming the file the rows of one `npm run bench` go to (JSON, one row per line). */
export const GOALS_ENV = 'VIPMESH_BENCH_GOALS';

/** One goal as measured in this run. */
export interface GoalRow {
  /** What is measured, e.g. `failover, 1 VIP: median / p99`. */
  row: string;
  /** vipmesh's figure, with its unit. */
  now: string;
  /** The peer's figure from the same run, named (`keepalived VRRPv3 advert_int 0.1: 322.0 / 350.3 ms`). */
  peer?: string;
  /** vipmesh against the peer, e.g. `0.41x / 0.47x`. */
  ratio?: string;
  /** The goal, e.g. `<= 150 / 250 ms and <= 0.5x`. */
  goal: string;
  met: boolean;
  /** The benchmark that measured it (filled in from the script's name). */
  bench?: string;
}

/** Print `r` and record it for the run's summary. */
export function recordGoal(r: GoalRow): void {
  const bench = r.bench ?? process.argv[1]?.replace(/^.*\//, '').replace(/\.ts$/, '');
  const row = { ...r, ...(bench === undefined ? {} : { bench }) };
  console.log(`goal: ${describe(row)}`);
  const file = process.env[GOALS_ENV];
  if (file !== undefined && file !== '') appendFileSync(file, `${JSON.stringify(row)}\n`);
}

function describe(r: GoalRow): string {
  const peer = r.peer === undefined ? '' : `; ${r.peer}`;
  const ratio = r.ratio === undefined ? '' : `; ratio ${r.ratio}`;
  return `${r.row}: ${r.now}${peer}${ratio}; goal ${r.goal}: ${r.met ? 'met' : 'MISSED'}`;
}

/** The rows recorded in `file` (none when it does not exist). */
export function readGoals(file: string): GoalRow[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as GoalRow);
}

/** A plain-text table of `rows` and a count of the goals met. */
export function goalsTable(rows: GoalRow[]): string {
  if (rows.length === 0) return 'goals: none measured in this run';
  const cells = rows.map((r) => [
    r.met ? 'met' : 'MISSED',
    r.row,
    r.now,
    r.peer ?? '',
    r.ratio ?? '',
    r.goal,
    r.bench ?? '',
  ]);
  const head = ['', 'row', 'vipmesh', 'peer, same run', 'ratio', 'goal', 'bench'];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((x, i) => x.padEnd(widths[i]!))
      .join(' | ')
      .trimEnd();
  const met = rows.filter((r) => r.met).length;
  return [
    line(head),
    widths.map((w) => '-'.repeat(w)).join('-|-'),
    ...cells.map(line),
    `${met} of ${rows.length} goals met`,
  ].join('\n');
}
