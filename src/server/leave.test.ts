import { EventEmitter } from 'node:events';
import t from 'tap';
import type { HolderChange, VipHolder } from '../api/assignments.js';
import { silentLogger } from '../log.js';
import { FakeClock } from '../testing/fake-clock.js';
import { LeaveHandler } from './leave.js';

/** The holders as the assignment index has them; `move` is what the master's pass writes. */
class Holders extends EventEmitter<{ change: [changes: HolderChange[]] }> {
  readonly byVip = new Map<string, VipHolder>();
  vipsOf(node: string): ReadonlyMap<string, VipHolder> {
    return new Map([...this.byVip].filter(([, h]) => h.node === node));
  }
  holder(vip: string): VipHolder | undefined {
    return this.byVip.get(vip);
  }
  move(vip: string, node: string | undefined): void {
    const before = this.byVip.get(vip);
    if (node === undefined) this.byVip.delete(vip);
    else this.byVip.set(vip, { node });
    this.emit('change', [{ vip, before, after: node === undefined ? undefined : { node } }]);
  }
}

const tick = () => new Promise((r) => setImmediate(r));

t.test('the node is marked leaving and the answer waits for the master to move every VIP', async (t) => {
  const clock = new FakeClock();
  const holders = new Holders();
  holders.move('198.51.100.1', 'n1');
  holders.move('198.51.100.2', 'n1');
  holders.move('198.51.100.3', 'n2');
  const marked: string[] = [];
  const h = new LeaveHandler({
    markLeaving: async (n) => {
      marked.push(n);
      return true;
    },
    holders,
    logger: silentLogger(),
    clock,
  });
  let answer: unknown;
  const p = h.leave('n1', { timeoutMs: 5000 }).then((r) => (answer = r));
  await tick();
  t.same(marked, ['n1']);
  holders.move('198.51.100.1', 'n2');
  await tick();
  t.equal(answer, undefined, 'one VIP still on the leaving node: no answer yet');
  holders.move('198.51.100.2', 'n3');
  await p;
  t.same(answer, {
    moved: [
      { vip: '198.51.100.1', node: 'n2' },
      { vip: '198.51.100.2', node: 'n3' },
    ],
  });
  t.equal(clock.pending, 0, 'no timer left behind');
  t.equal(holders.listenerCount('change'), 0, 'no listener left behind');
});

t.test('what did not move in time, or cannot move, is answered without a new holder', async (t) => {
  const clock = new FakeClock();
  const holders = new Holders();
  holders.move('198.51.100.1', 'n1');
  holders.move('198.51.100.2', 'n1');
  const h = new LeaveHandler({ markLeaving: async () => true, holders, logger: silentLogger(), clock });
  let answer: unknown;
  const p = h.leave('n1', { timeoutMs: 2000 }).then((r) => (answer = r));
  await tick();
  // No other node may hold .1: the master deletes its key.
  holders.move('198.51.100.1', undefined);
  clock.advance(1999);
  await tick();
  t.equal(answer, undefined);
  clock.advance(1);
  await p;
  t.same(answer, { moved: [{ vip: '198.51.100.1' }, { vip: '198.51.100.2' }] });
});

t.test('a node holding nothing is answered at once; a bad timeout falls back to the default', async (t) => {
  const clock = new FakeClock();
  const holders = new Holders();
  const h = new LeaveHandler({ markLeaving: async () => true, holders, logger: silentLogger(), clock });
  t.same(await h.leave('n1', { timeoutMs: 'soon' }), { moved: [] });
  t.equal(clock.pending, 0);
});

t.test('a server that is stopping marks nothing and answers at once: nothing moves', async (t) => {
  const clock = new FakeClock();
  const holders = new Holders();
  holders.move('198.51.100.1', 'n1');
  const h = new LeaveHandler({ markLeaving: async () => false, holders, logger: silentLogger(), clock });
  t.same(await h.leave('n1', { timeoutMs: 5000 }), { moved: [{ vip: '198.51.100.1' }] });
  t.equal(clock.pending, 0);
});
