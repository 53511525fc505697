import t from 'tap';
import { inBatches, WRITE_CONCURRENCY } from './batches.js';

t.test('inBatches: runs every item, many at once but never more than the bound', async (t) => {
  let inFlight = 0;
  let most = 0;
  const done: number[] = [];
  const items = Array.from({ length: 1000 }, (_, i) => i);
  await inBatches(items, async (i) => {
    inFlight++;
    most = Math.max(most, inFlight);
    await new Promise((r) => setImmediate(r));
    done.push(i);
    inFlight--;
  });
  t.equal(done.length, 1000, 'every item ran');
  t.equal(most, WRITE_CONCURRENCY, `${WRITE_CONCURRENCY} in flight at most, and that many at once`);
  t.same(done.slice(0, 3), [0, 1, 2], 'started in order');
});

t.test(
  'inBatches: a failing item does not stop the others; the first error is thrown at the end',
  async (t) => {
    const done: number[] = [];
    const err = await inBatches([1, 2, 3, 4], async (i) => {
      if (i === 2) throw new Error('two');
      if (i === 3) throw new Error('three');
      done.push(i);
    }).catch((e: unknown) => e);
    t.same(done, [1, 4], 'the others ran');
    t.match(err, { message: 'two' }, 'the first error');
    await inBatches([], async () => {
      throw new Error('never');
    });
    t.pass('no items: nothing runs');
  },
);
