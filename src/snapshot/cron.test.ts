import t from 'tap';
import { CronSchedule, DEFAULT_SCHEDULE } from './cron.js';

/** Local time, as cron reads it. */
const at = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0) =>
  new Date(y, mo - 1, d, h, mi, s).getTime();

t.test('next runs of common schedules', async (t) => {
  const cases: Array<{ expr: string; from: number; want: number[] }> = [
    {
      expr: DEFAULT_SCHEDULE,
      from: at(2026, 12, 5, 16, 30),
      want: [at(2026, 12, 6, 0), at(2026, 12, 6, 12)],
    },
    {
      expr: '*/15 * * * *',
      from: at(2026, 1, 1, 10, 14, 59),
      want: [at(2026, 1, 1, 10, 15), at(2026, 1, 1, 10, 30)],
    },
    { expr: '5 4 * * 0', from: at(2026, 12, 5), want: [at(2026, 12, 6, 4, 5), at(2026, 12, 13, 4, 5)] },
    { expr: '0 0 * * 7', from: at(2026, 12, 5), want: [at(2026, 12, 6)] },
    { expr: '0 0 29 2 *', from: at(2026, 1, 1), want: [at(2028, 2, 29)] },
    {
      expr: '30 2 1,15 * 1-5',
      from: at(2026, 12, 5),
      want: [at(2026, 12, 7, 2, 30), at(2026, 12, 8, 2, 30)],
    },
    {
      expr: '0 9-17/4 * * *',
      from: at(2026, 12, 5, 9),
      want: [at(2026, 12, 5, 13), at(2026, 12, 5, 17), at(2026, 12, 6, 9)],
    },
    { expr: '@daily', from: at(2026, 12, 5, 0, 0), want: [at(2026, 12, 6)] },
    {
      expr: '10/20 * * 12 *',
      from: at(2026, 12, 5, 0, 0),
      want: [at(2026, 12, 5, 0, 10), at(2026, 12, 5, 0, 30)],
    },
  ];
  for (const c of cases) {
    const s = new CronSchedule(c.expr);
    let from = c.from;
    const got: number[] = [];
    for (const _ of c.want) {
      from = s.next(from)!;
      got.push(from);
    }
    t.same(
      got.map((x) => new Date(x).toString()),
      c.want.map((x) => new Date(x).toString()),
      c.expr,
    );
  }
  t.equal(new CronSchedule('0 0 31 2 *').next(at(2026, 1, 1)), undefined, 'February 31st never comes');
});

t.test('bad expressions name the field', async (t) => {
  for (const [expr, why] of [
    ['0 */12 * *', /4 fields/],
    ['60 * * * *', /minute "60"/],
    ['* 24 * * *', /hour/],
    ['* * 0 * *', /day of month/],
    ['* * * 13 *', /month/],
    ['* * * * 8', /day of week/],
    ['*/0 * * * *', /step/],
    ['a * * * *', /not a number/],
    ['5-1 * * * *', /outside/],
  ] as const) {
    t.throws(() => new CronSchedule(expr), { code: 'VIPMESH_SNAPSHOT_BAD_FLAG', message: why }, expr);
  }
});
