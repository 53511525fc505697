import t from 'tap';
import { silentLogger } from '../log.js';
import { Committer, type Transactional } from './committer.js';

class FakeDb implements Transactional {
  syncs: Array<(err: Error | null) => void> = [];
  commits = 0;
  transaction<T>(fn: () => T): T {
    const r = fn();
    this.commits++;
    return r;
  }
  step<T>(fn: () => T): T {
    return fn();
  }
  sync(cb: (err: Error | null) => void): void {
    this.syncs.push(cb);
  }
}

const tick = () => new Promise((r) => setImmediate(r));

t.test('writes are acknowledged only after a sync, in commit order, one sync for many batches', async (t) => {
  const db = new FakeDb();
  const durable: unknown[] = [];
  let n = 0;
  const c = new Committer(
    db,
    { begin() {}, applied: () => ++n, durable: (a) => durable.push(a), failed() {} },
    silentLogger(),
  );
  const acked: string[] = [];
  const a = c.submit(() => 'a').then((v) => acked.push(v));
  const b = c.submit(() => 'b').then((v) => acked.push(v));
  await tick();
  t.equal(db.commits, 1, 'a and b share one transaction');
  t.equal(db.syncs.length, 1);
  const d = c.submit(() => 'd').then((v) => acked.push(v));
  const e = c.submit(() => {
    throw new Error('bad request');
  });
  await tick();
  t.equal(db.commits, 2, 'the next batch commits while the sync runs');
  t.equal(db.syncs.length, 1, 'but waits for the running sync before syncing again');
  t.same(acked, [], 'nothing is acknowledged before the disk says so');
  db.syncs.shift()!(null);
  await Promise.all([a, b]);
  t.same(acked, ['a', 'b']);
  t.same(durable, [1]);
  t.equal(db.syncs.length, 1, 'a second sync covers the second batch');
  db.syncs.shift()!(null);
  await d;
  await t.rejects(e, { message: 'bad request' }, 'a failing write fails alone');
  t.same(acked, ['a', 'b', 'd']);
  t.same(durable, [1, 2]);
  const closing = c.close();
  await closing;
  await t.rejects(
    c.submit(() => 1),
    { message: 'datastore is closed' },
  );
});

t.test('a failed sync stops the datastore', async (t) => {
  const db = new FakeDb();
  const c = new Committer(db, { begin() {}, applied: () => 0, durable() {}, failed() {} }, silentLogger());
  const w = c.submit(() => 1);
  await tick();
  db.syncs.shift()!(Object.assign(new Error('Input/output error'), { code: 'EIO' }));
  await t.rejects(w, { message: /syncing the WAL failed: Input\/output error/ });
  await t.rejects(
    c.submit(() => 2),
    { message: /datastore stopped/ },
  );
});

t.test('a failed commit rejects its batch and reloads state', async (t) => {
  const db = new FakeDb();
  db.transaction = () => {
    throw Object.assign(new Error('disk full'), { code: 'SQLITE_FULL' });
  };
  let failed = 0;
  const c = new Committer(
    db,
    {
      begin() {},
      applied: () => 0,
      durable() {},
      failed() {
        failed++;
      },
    },
    silentLogger(),
  );
  await t.rejects(
    c.submit(() => 1),
    { code: 'SQLITE_FULL' },
  );
  t.equal(failed, 1);
});

t.test('exclusive holds batches back until its work settles, then commits what waited in one', async (t) => {
  const db = new FakeDb();
  const c = new Committer(db, { begin() {}, applied: () => 0, durable() {}, failed() {} }, silentLogger());
  let release: () => void = () => undefined;
  const held = c.exclusive(() => new Promise<string>((r) => (release = () => r('done'))));
  const a = c.submit(() => 'a');
  const b = c.submit(() => 'b');
  await tick();
  await tick();
  t.equal(db.commits, 0, 'nothing commits while held');
  release();
  t.equal(await held, 'done', 'exclusive resolves with its work');
  await tick();
  t.equal(db.commits, 1, 'what waited commits in one transaction');
  for (const cb of db.syncs.splice(0)) cb(null);
  t.same(await Promise.all([a, b]), ['a', 'b']);
});
