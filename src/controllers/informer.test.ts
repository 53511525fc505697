import t from 'tap';
import { MemoryKv } from '../api/memory-kv.js';
import { ResourceStore } from '../api/store.js';
import type { Node } from '../api/types.js';
import { silentLogger } from '../log.js';
import { FakeClock } from '../testing/fake-clock.js';
import { Informer, Periodic, Reconciler } from './informer.js';

const log = silentLogger();
const yieldLoop = () => new Promise<void>((r) => setImmediate(r));

t.test('Reconciler.follow: a change runs a pass, seen first; close unsubscribes', async (t) => {
  const store = new ResourceStore({ kv: new MemoryKv() });
  t.teardown(() => store.close());
  const inf = new Informer(store, 'nodes', { logger: log });
  let runs = 0;
  const r = new Reconciler(
    async () => {
      runs++;
    },
    { logger: log },
  );
  const seen: string[] = [];
  r.follow(inf, (e) => seen.push(`${e.type}:${e.key}`));
  let unsubscribed = 0;
  r.onClose(() => unsubscribed++);
  const n1: Node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } };
  inf.emit('change', { type: 'ADDED', object: n1, key: 'n1' });
  await r.idle();
  t.equal(runs, 1);
  t.same(seen, ['ADDED:n1']);
  await r.close();
  t.equal(unsubscribed, 1, 'onClose ran');
  t.equal(inf.listenerCount('change'), 0, 'no listener left on the informer');
  inf.emit('change', { type: 'DELETED', object: n1, key: 'n1' });
  await r.idle();
  t.equal(runs, 1, 'no pass after close');
  t.same(seen, ['ADDED:n1']);
});

t.test('Periodic: runs every interval after the previous run ends; errors go to onError', async (t) => {
  const clock = new FakeClock();
  let runs = 0;
  let finish: (() => void) | undefined;
  let fail = false;
  const errors: unknown[] = [];
  const loop = new Periodic(
    () => {
      runs++;
      if (fail) return Promise.reject(new Error('boom'));
      return new Promise<void>((resolve) => {
        finish = resolve;
      });
    },
    { intervalMs: 1000, clock, onError: (err) => errors.push(err) },
  );
  loop.start();
  clock.advance(999);
  t.equal(runs, 0, 'not before the interval');
  clock.advance(1);
  t.equal(runs, 1);
  clock.advance(5000);
  t.equal(runs, 1, 'one run at a time: the next is timed from the end of this one');
  finish!();
  await loop.idle();
  t.equal(clock.pending, 1, 'the next run is scheduled');
  fail = true;
  clock.advance(1000);
  await loop.idle();
  t.equal(runs, 2);
  t.match(errors, [{ message: 'boom' }], 'the failure went to onError');
  t.equal(clock.pending, 1, 'and the loop goes on');
  fail = false;
  clock.advance(1000);
  t.equal(runs, 3);
  let closed = false;
  const closing = loop.close().then(() => {
    closed = true;
  });
  await yieldLoop();
  t.notOk(closed, 'close waits for the run in progress');
  finish!();
  await closing;
  t.equal(clock.pending, 0, 'nothing scheduled after close');
  clock.advance(10_000);
  t.equal(runs, 3);
});
