import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { FakeClock } from '../testing/fake-clock.js';
import { clip, LogSummary, TokenBucket } from './limits.js';

t.test('a token bucket allows its burst, then its rate', (t) => {
  const clock = new FakeClock();
  const b = new TokenBucket(clock, 10, 5);
  let taken = 0;
  while (b.take()) taken++;
  t.equal(taken, 5, 'the burst');
  clock.advance(300);
  taken = 0;
  while (b.take()) taken++;
  t.equal(taken, 3, '300 ms at 10/s');
  clock.advance(60_000);
  taken = 0;
  while (b.take()) taken++;
  t.equal(taken, 5, 'refills no further than the burst');
  t.end();
});

t.test('a log summary logs the first of each key at once and the rest in one line per window', (t) => {
  const clock = new FakeClock();
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _e, cb) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      cb();
    },
  });
  const s = new LogSummary({
    clock,
    logger: pino(sink),
    level: 'warn',
    what: 'things',
    keyField: 'remote',
    maxKeys: 2,
  });
  for (let i = 0; i < 1000; i++) s.note('a', { why: 'bad' }, 'refused a thing');
  s.note('b', {}, 'refused a thing');
  for (let i = 0; i < 10; i++) s.note(`x${i}`, {}, 'refused a thing');
  t.same(
    lines.map((l) => l['remote']),
    ['a', 'b', 'other'],
    'one line per key at once; keys past the limit are "other"',
  );
  clock.advance(10_000);
  t.same(
    lines.slice(3).map((l) => l['msg']),
    [
      'refused 999 more things from remote a in the last 10 s',
      'refused 9 more things from remote other in the last 10 s',
    ],
  );
  t.equal(lines[3]!['why'], 'bad', 'the summary keeps the first event fields');
  s.note('a', {}, 'refused a thing');
  t.equal(lines.length, 6, 'a new window logs the first one at once again');
  t.end();
});

t.test('clip keeps short strings and says how long a cut one was', (t) => {
  t.equal(clip('short'), 'short');
  t.equal(clip('x'.repeat(60_000)), `${'x'.repeat(64)}... (60000 chars)`);
  t.end();
});
