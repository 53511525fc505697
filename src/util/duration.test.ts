import fc from 'fast-check';
import t from 'tap';
import { isVipmeshError } from '../errors.js';
import { parseDuration } from './duration.js';

t.test('Go-style durations', async (t) => {
  const cases: Array<[string | number, number]> = [
    ['100ms', 100],
    ['1s', 1000],
    ['1.5s', 1500],
    ['2m', 120_000],
    ['1h30m', 5_400_000],
    ['250', 250],
    [40, 40],
  ];
  for (const [input, want] of cases) t.equal(parseDuration(input, 'x'), want, String(input));
  for (const bad of ['', 'ms', '1x', '-1s', '1s2', 'abc']) {
    t.throws(() => parseDuration(bad, '--heartbeat-interval'), { code: 'VIPMESH_BAD_DURATION' }, bad);
  }
});

t.test('parseDuration never throws anything but a VipmeshError', async () => {
  fc.assert(
    fc.property(fc.string(), (s) => {
      try {
        const v = parseDuration(s, 'x');
        return Number.isFinite(v) && v >= 0;
      } catch (e) {
        return isVipmeshError(e, 'VIPMESH_BAD_DURATION');
      }
    }),
  );
});
