import t from 'tap';
import { ShutdownStack } from './shutdown-stack.js';

t.test('close: last pushed first, each once; a failing step does not stop the others', async (t) => {
  const closed: string[] = [];
  const stack = new ShutdownStack();
  stack.push('a', () => closed.push('a'));
  stack.push('b', async () => {
    closed.push('b');
    throw new Error('b failed');
  });
  stack.push('c', async () => closed.push('c'));
  t.equal(stack.size, 3);
  await stack.close();
  t.same(closed, ['c', 'b', 'a'], "reverse order; b's error is logged, not thrown");
  await stack.close();
  t.same(closed, ['c', 'b', 'a'], 'a second close closes nothing again');
  t.equal(stack.size, 0);
});

t.test("errors: 'throw' closes everything, then rejects with the first error", async (t) => {
  const closed: string[] = [];
  const stack = new ShutdownStack({ errors: 'throw' });
  stack.push('a', () => closed.push('a'));
  stack.push('b', () => {
    throw new Error('b failed');
  });
  stack.push('c', () => {
    throw new Error('c failed');
  });
  await t.rejects(stack.close(), { message: 'c failed' });
  t.same(closed, ['a']);
});

t.test('start: a failing start closes what it pushed, in reverse, and rethrows', async (t) => {
  const closed: string[] = [];
  const stack = new ShutdownStack();
  await t.rejects(
    stack.start(async (s) => {
      s.push('first', () => closed.push('first'));
      s.push('second', () => closed.push('second'));
      throw new Error('third step failed');
    }),
    { message: 'third step failed' },
  );
  t.same(closed, ['second', 'first']);
  const value = await stack.start(async (s) => {
    s.push('kept', () => closed.push('kept'));
    return 42;
  });
  t.equal(value, 42);
  t.equal(stack.size, 1, 'a successful start leaves its steps open');
});
