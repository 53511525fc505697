import t from 'tap';
import { FakeClock } from '../testing/fake-clock.js';
import { heapChurnFromEnv, startHeapChurn } from './heap-churn.js';

t.test('allocates one slice per tick until stopped', async (t) => {
  const clock = new FakeClock();
  const churn = startHeapChurn({ mbPerSecond: 1, tickMs: 20, clock });
  clock.advance(200);
  t.equal(churn.slices, 10);
  churn.stop();
  clock.advance(200);
  t.equal(churn.slices, 10, 'no slices after stop');
});

t.test('heapChurnFromEnv: off unless a positive number is given', async (t) => {
  const clock = new FakeClock();
  for (const v of [undefined, '', '0', '-5', 'lots']) {
    t.equal(heapChurnFromEnv({ VIPMESH_DEBUG_HEAP_CHURN: v }, clock), undefined, `${v}`);
  }
  const churn = heapChurnFromEnv({ VIPMESH_DEBUG_HEAP_CHURN: '2.5' }, clock);
  t.ok(churn);
  clock.advance(100);
  t.equal(churn?.slices, 5);
  churn?.stop();
});
