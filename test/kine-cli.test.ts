/** `vipmesh kine`: flags, startup errors naming the data file, clean shutdown on SIGTERM. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { compactionFromFlags } from '../src/cli/commands/kine.js';
import type { CliContext } from '../src/cli/context.js';
import { run } from '../src/cli/program.js';
import { silentLogger } from '../src/log.js';
import { etcdctl, freePort } from './kine-peers.js';

function ctx(): CliContext & { err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return { stdout, stderr, exitCode: 0, logger: () => silentLogger(), err: () => err };
}

t.test('compaction flags follow etcd', async (t) => {
  t.same(compactionFromFlags('revision', '1000'), { mode: 'revision', retention: 1000 });
  t.same(
    compactionFromFlags('periodic', '1'),
    { mode: 'periodic', retention: 3_600_000 },
    'a bare number is hours',
  );
  t.same(compactionFromFlags('periodic', '30m', '1m'), {
    mode: 'periodic',
    retention: 1_800_000,
    interval: 60_000,
  });
  t.throws(() => compactionFromFlags('sometimes', '1'), { code: 'VIPMESH_KINE_BAD_FLAG' });
  t.throws(() => compactionFromFlags('revision', '1h'), { code: 'VIPMESH_KINE_BAD_FLAG' });
  t.throws(() => compactionFromFlags('periodic', 'soon'), { code: 'VIPMESH_BAD_DURATION' });
});

t.test('startup errors name the data file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'state.db'), Buffer.alloc(4096, 0x42));
  const c = ctx();
  const code = await run(['kine', '--data-dir', dir, '--listen-address', '127.0.0.1:0'], c);
  t.equal(code, 1);
  t.match(c.err(), `error: data file ${join(dir, 'state.db')} is not a valid vipmesh datastore`);
  t.match(c.err(), '(VIPMESH_KINE_DB_CORRUPT)');
  const bad = ctx();
  t.equal(await run(['kine', '--data-dir', dir, '--auto-compaction-mode', 'never'], bad), 1);
  t.match(bad.err(), 'VIPMESH_KINE_BAD_FLAG');
});

t.test('vipmesh kine serves etcdctl and shuts down cleanly on SIGTERM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'kine',
      '--listen-address',
      `127.0.0.1:${port}`,
      '--data-dir',
      dir,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' } },
  );
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('datastore serving')) resolve();
    });
    proc.once('exit', () => reject(new Error(out)));
  });
  const r = await etcdctl(`127.0.0.1:${port}`, ['put', 'hello', 'world']);
  t.equal(r.stdout.trim(), 'OK');
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  proc.kill('SIGTERM');
  t.equal(await exited, 0, 'exit status 0 after SIGTERM');
  t.match(out, 'datastore closed');
});
