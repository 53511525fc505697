import t from 'tap';
import { until } from './until.js';

t.test('until resolves to the first value that is not undefined or false', async (t) => {
  let n = 0;
  t.equal(await until('n to reach 3', () => (++n >= 3 ? n : false), { stepMs: 1 }), 3);
  t.equal(await until('a promise', async () => 'ok'), 'ok');
});

t.test('until names what it waited for when the deadline passes', async (t) => {
  await t.rejects(
    until('the moon', () => false, { timeoutMs: 30, stepMs: 5 }),
    {
      message: /^timed out after 30 ms waiting for the moon$/,
    },
  );
});

t.test('a throw ends the wait, unless errors are retried', async (t) => {
  await t.rejects(
    until('x', () => {
      throw new Error('boom');
    }),
    { message: 'boom' },
  );
  let n = 0;
  const v = await until(
    'the third look',
    () => {
      if (++n < 3) throw new Error(`not yet ${n}`);
      return n;
    },
    { retryErrors: true, stepMs: 1 },
  );
  t.equal(v, 3);
  await t.rejects(
    until(
      'never',
      () => {
        throw new Error('still down');
      },
      { retryErrors: true, timeoutMs: 20, stepMs: 5 },
    ),
    { message: /waiting for never: Error: still down$/ },
  );
});
