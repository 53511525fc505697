import t from 'tap';
import { MemoryKv } from '../api/memory-kv.js';
import { sharedKv } from './datastore-step.js';

t.test("the server's shared datastore view keeps a write's guard (pools are checked as a set)", async (t) => {
  const inner = new MemoryKv();
  const kv = sharedKv(inner);
  const guard = '/vipmesh/guards/address-pools';
  const g = await kv.put(guard, Buffer.from('1'), 0);
  t.ok(g.ok, 'guard written');
  const rev = (await kv.get(guard))!.modRevision;
  const first = await kv.put('/a', Buffer.from('a'), 0, { key: guard, expect: rev });
  t.ok(first.ok, 'a write with the current guard succeeds');
  const stale = await kv.put('/b', Buffer.from('b'), 0, { key: guard, expect: rev });
  t.notOk(stale.ok, 'a write checked against a guard that moved is refused');
  t.equal(await kv.get('/b'), undefined, 'and nothing was written');
  await kv.close();
  t.ok(await inner.get('/a'), 'closing the shared view leaves the client open');
});
