import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Client,
  credentials,
  makeGenericClientConstructor,
  type ServerDuplexStream,
  status,
} from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { silentLogger } from '../log.js';
import { FakeClock } from '../testing/fake-clock.js';
import { Backend } from './backend.js';
import { startDatastore } from './index.js';
import { etcdServices } from './proto.js';
import { req } from './requests.js';
import { WatchStream } from './server/watch.js';

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-srv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

type Cb = (err: (Error & { code?: number; details?: string }) | null, res?: Record<string, unknown>) => void;
function unary(client: Client, method: string, body: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    (client as unknown as Record<string, (r: object, cb: Cb) => void>)[method]!.call(
      client,
      body,
      (err, res) => (err ? reject(err) : resolve(res!)),
    );
  });
}

t.test('gRPC edge: unix socket, unimplemented RPCs named, etcd request size limit', async (t) => {
  const dir = tempDir(t);
  const sock = join(dir, 'kine.sock');
  const ds = await startDatastore({ dataDir: dir, listenAddress: `unix://${sock}`, logger: silentLogger() });
  t.teardown(() => ds.close());
  t.equal(ds.address, `unix://${sock}`);
  const svc = etcdServices();
  const kv = new (makeGenericClientConstructor(svc.KV, 'KV'))(`unix://${sock}`, credentials.createInsecure());
  const auth = new (makeGenericClientConstructor(svc.Auth, 'Auth'))(
    `unix://${sock}`,
    credentials.createInsecure(),
  );
  const maint = new (makeGenericClientConstructor(svc.Maintenance, 'Maintenance'))(
    `unix://${sock}`,
    credentials.createInsecure(),
  );
  t.teardown(() => {
    kv.close();
    auth.close();
    maint.close();
  });
  const put = await unary(kv, 'Put', { key: Buffer.from('k'), value: Buffer.from('v') });
  t.equal((put['header'] as { revision: string }).revision, '2');
  await t.rejects(unary(auth, 'AuthEnable', {}), {
    code: status.UNIMPLEMENTED,
    details: 'vipmesh datastore: etcdserverpb.Auth/AuthEnable is not implemented',
  });
  await t.rejects(unary(maint, 'Hash', {}), { code: status.UNIMPLEMENTED });
  await t.rejects(unary(auth, 'Authenticate', { name: 'x', password: 'y' }), {
    code: status.FAILED_PRECONDITION,
    details: 'etcdserver: authentication is not enabled',
  });
  await t.rejects(unary(kv, 'Put', { key: Buffer.from('big'), value: Buffer.alloc(1_600_000) }), {
    code: status.INVALID_ARGUMENT,
    details: 'etcdserver: request is too large',
  });
  await t.rejects(unary(kv, 'Put', { key: Buffer.from('huge'), value: Buffer.alloc(2_200_000) }), {
    code: status.RESOURCE_EXHAUSTED,
  });
  await t.rejects(unary(kv, 'Put', { key: Buffer.alloc(0), value: Buffer.from('v') }), {
    code: status.INVALID_ARGUMENT,
    details: 'etcdserver: key is not provided',
  });
  await t.rejects(unary(kv, 'DeleteRange', { key: Buffer.alloc(0) }), { code: status.INVALID_ARGUMENT });
  const st = await unary(maint, 'Status', {});
  t.equal(st['raftIndex'], '2');
  t.ok(Number(st['dbSize']) > 0);
  await t.rejects(
    startDatastore({
      dataDir: dir,
      dataFile: join(dir, 'other.db'),
      listenAddress: '256.1.1.1:1',
      logger: silentLogger(),
    }),
    { code: 'VIPMESH_KINE_LISTEN' },
  );
});

class FakeCall extends EventEmitter {
  sent: Array<Record<string, unknown>> = [];
  writableLength = 0;
  ended = false;
  write(res: Record<string, unknown>): boolean {
    this.sent.push(res);
    return true;
  }
  end(): void {
    this.ended = true;
  }
}

const create = (key: string, extra: Record<string, unknown> = {}) => ({
  create_request: {
    key: Buffer.from(key),
    range_end: Buffer.alloc(0),
    start_revision: '0',
    progress_notify: false,
    filters: [],
    prev_kv: false,
    watch_id: '0',
    ...extra,
  },
});

t.test(
  'ranges answered at once each get their own keys, though their responses share one buffer',
  async (t) => {
    const dir = tempDir(t);
    const sock = join(dir, 'kine.sock');
    const ds = await startDatastore({
      dataDir: dir,
      listenAddress: `unix://${sock}`,
      logger: silentLogger(),
    });
    t.teardown(() => ds.close());
    const kv = new (makeGenericClientConstructor(etcdServices().KV, 'KV'))(
      `unix://${sock}`,
      credentials.createInsecure(),
    );
    t.teardown(() => kv.close());
    // Two prefixes of 300 keys with 1 KiB values: each response is larger than a socket write takes at once.
    const value = (p: string, i: number) => Buffer.alloc(1024, `${p}${i % 10}`);
    for (const p of ['a', 'b']) {
      const ops = (from: number) =>
        Array.from({ length: 100 }, (_, i) => ({
          request_put: {
            key: Buffer.from(`${p}/${String(from + i).padStart(3, '0')}`),
            value: value(p, from + i),
          },
        }));
      for (const from of [0, 100, 200]) await unary(kv, 'Txn', { success: ops(from) });
    }
    const range = (p: string) =>
      unary(kv, 'Range', { key: Buffer.from(`${p}/`), range_end: Buffer.from(`${p}0`) });
    const results = await Promise.all([range('a'), range('b'), range('a'), range('b')]);
    results.forEach((res, n) => {
      const p = n % 2 === 0 ? 'a' : 'b';
      const kvs = res['kvs'] as Array<{ key: Buffer; value: Buffer }>;
      t.equal(kvs.length, 300, `range ${n} of ${p}/ has every key`);
      t.ok(
        kvs.every(
          (k, i) => k.key.toString() === `${p}/${String(i).padStart(3, '0')}` && k.value.equals(value(p, i)),
        ),
        `range ${n}: every key of ${p}/ with its own value`,
      );
    });
  },
);

t.test('watch streams: ids, filters, progress, compaction, slow watchers', async (t) => {
  const clock = new FakeClock();
  const b = new Backend({ file: join(tempDir(t), 'state.db'), logger: silentLogger(), clock });
  t.teardown(() => b.close());
  const call = new FakeCall();
  new WatchStream(b, call as unknown as ServerDuplexStream<never, never>, silentLogger(), clock, {
    maxPending: 10,
    progressIntervalMs: 1000,
    replayRevs: 2,
  });
  const put = (k: string, v: string) => b.put(req.put(k, v));
  const settle = async () => {
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  };
  for (let i = 0; i < 5; i++) await put('h', `v${i}`); // revisions 2..6
  call.emit('data', create('h', { start_revision: '2', prev_kv: true }));
  await settle();
  t.same(call.sent[0], { header: b.header(6), watch_id: 0, created: true });
  const replayed = call.sent.slice(1).flatMap((r) => (r['events'] as Array<{ kv: { value: Buffer } }>) ?? []);
  t.same(
    replayed.map((e) => String(e.kv.value)),
    ['v0', 'v1', 'v2', 'v3', 'v4'],
    'history replayed in chunks',
  );
  t.equal(call.sent.length, 4, 'three replay responses of at most 2 revisions each');

  call.emit('data', create('n', { filters: [0], progress_notify: true }));
  call.emit('data', create('n', { watch_id: '7' }));
  call.emit('data', create('n', { watch_id: '7' }));
  await settle();
  t.match(call.sent.at(-1), {
    watch_id: -1,
    created: true,
    canceled: true,
    cancel_reason: /duplicate watch ID/,
  });
  call.sent = [];
  await put('n', 'x');
  await b.deleteRange(req.del('n'));
  t.same(
    call.sent.map((r) => [r['watch_id'], (r['events'] as Array<{ type: number }>).map((e) => e.type)]),
    [
      [7, [0]],
      [1, [1]],
      [7, [1]],
    ],
    'the NOPUT watcher (id 1) sees only the delete',
  );
  call.sent = [];
  clock.advance(1000);
  t.same(
    call.sent,
    [{ header: b.header(), watch_id: 1 }],
    'a progress notification for the watcher that asked',
  );
  call.sent = [];
  call.emit('data', { progress_request: {} });
  t.same(
    call.sent,
    [{ header: b.header(), watch_id: -1 }],
    'RequestProgress answered with the current revision',
  );
  call.sent = [];
  call.emit('data', { cancel_request: { watch_id: '7' } });
  call.emit('data', { cancel_request: { watch_id: '99' } });
  t.same(call.sent, [{ header: b.header(), watch_id: 7, canceled: true }], 'unknown ids are ignored');

  await b.compact(5, true);
  call.sent = [];
  call.emit('data', create('h', { start_revision: '3' }));
  await settle();
  t.match(
    call.sent[1],
    { canceled: true, compact_revision: 5 },
    'a compacted start revision is refused as etcd does',
  );

  call.sent = [];
  call.writableLength = 11; // the client stopped reading
  await put('h', 'y');
  t.match(
    call.sent.filter((r) => r['canceled']).map((r) => r['watch_id']),
    [0, 1],
    'every watcher of the stalled stream is cancelled',
  );
  t.match(call.sent.at(-1), { cancel_reason: /too slow/ });
  t.equal(b.watchers, 0, 'and unhooked from the write path');
  call.writableLength = 0;
  call.emit('end');
  t.equal(call.ended, true);
});

t.test('a replaying watcher waits for the client to drain', async (t) => {
  const clock = new FakeClock();
  const b = new Backend({ file: join(tempDir(t), 'state.db'), logger: silentLogger(), clock });
  t.teardown(() => b.close());
  for (let i = 0; i < 6; i++) await b.put(req.put('k', `v${i}`));
  const call = new FakeCall();
  call.writableLength = 6;
  new WatchStream(b, call as unknown as ServerDuplexStream<never, never>, silentLogger(), clock, {
    maxPending: 10,
    replayRevs: 1,
  });
  call.emit('data', create('k', { start_revision: '2' }));
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  t.equal(call.sent.length, 2, 'created and one chunk, then it waits');
  call.writableLength = 0;
  call.emit('drain');
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  t.equal(call.sent.length, 7, 'the rest after the drain');
  call.emit('cancelled');
});
