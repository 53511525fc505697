/** `vipmesh kine`: flags, startup errors naming the data file, clean shutdown on SIGTERM. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClientDuplexStream, credentials, makeGenericClientConstructor } from '@grpc/grpc-js';
import t from 'tap';
import { compactionFromFlags } from '../src/cli/commands/kine.js';
import { run } from '../src/cli/program.js';
import { etcdServices } from '../src/kine/proto.js';
import { silentLogger } from '../src/log.js';
import { captureCli } from '../src/testing/cli.js';
import { etcdctl, freePort, startKineCli } from './kine-peers.js';

t.test('compaction flags follow etcd', async (t) => {
  t.same(compactionFromFlags('revision', '1000'), { mode: 'revision', retentionRevisions: 1000 });
  t.same(
    compactionFromFlags('periodic', '1'),
    { mode: 'periodic', retentionMs: 3_600_000 },
    'a bare number is hours',
  );
  t.same(compactionFromFlags('periodic', '30m', '1m'), {
    mode: 'periodic',
    retentionMs: 1_800_000,
    intervalMs: 60_000,
  });
  t.throws(() => compactionFromFlags('sometimes', '1'), { code: 'VIPMESH_KINE_BAD_FLAG' });
  t.throws(() => compactionFromFlags('revision', '1h'), { code: 'VIPMESH_KINE_BAD_FLAG' });
  t.throws(() => compactionFromFlags('periodic', 'soon'), { code: 'VIPMESH_BAD_DURATION' });
});

t.test('startup errors name the data file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'state.db'), Buffer.alloc(4096, 0x42));
  const c = captureCli(silentLogger);
  const code = await run(['kine', '--data-dir', dir, '--listen-address', '127.0.0.1:0'], c);
  t.equal(code, 1);
  t.match(c.err(), `error: data file ${join(dir, 'state.db')} is not a valid vipmesh datastore`);
  t.match(c.err(), '(VIPMESH_KINE_DB_CORRUPT)');
  const bad = captureCli(silentLogger);
  t.equal(await run(['kine', '--data-dir', dir, '--auto-compaction-mode', 'never'], bad), 1);
  t.match(bad.err(), 'VIPMESH_KINE_BAD_FLAG');
});

t.test('vipmesh kine serves etcdctl and shuts down cleanly on SIGTERM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const { proc, out } = await startKineCli(dir, port);
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const r = await etcdctl(`127.0.0.1:${port}`, ['put', 'hello', 'world']);
  t.equal(r.stdout.trim(), 'OK');
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  proc.kill('SIGTERM');
  t.equal(await exited, 0, 'exit status 0 after SIGTERM');
  t.match(out(), 'datastore closed');
});

t.test('--watch-progress-notify-interval sets how often watchers get progress notifications', async (t) => {
  const bad = captureCli(silentLogger);
  t.equal(
    await run(['kine', '--watch-progress-notify-interval', '0s', '--listen-address', '127.0.0.1:0'], bad),
    1,
  );
  t.match(bad.err(), '--watch-progress-notify-interval must be above 0');
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const { proc } = await startKineCli(dir, port, ['--watch-progress-notify-interval', '200ms']);
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const Watch = makeGenericClientConstructor(etcdServices().Watch, 'Watch');
  const client = new Watch(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as {
    Watch(): ClientDuplexStream<object, WatchReply>;
    close(): void;
  };
  t.teardown(() => client.close());
  const stream = client.Watch();
  // With etcd's default of 10 minutes, no notification would come within the test's timeout.
  const progress = await new Promise<WatchReply>((resolve, reject) => {
    stream.on('data', (r: WatchReply) => {
      if (!r.created && r.events.length === 0) resolve(r);
    });
    stream.on('error', reject);
    stream.write({ create_request: { key: Buffer.from('k'), progress_notify: true } });
  });
  t.equal(progress.header.revision, '1', 'a progress notification at the current revision');
  stream.cancel();
});

interface WatchReply {
  header: { revision: string };
  created: boolean;
  events: unknown[];
}
