/**
 * Crash safety: SIGKILL `vipmesh kine` during a write storm from 16 concurrent clients, restart it, and check
 * that every acknowledged write is there with the revision it was acknowledged at, that revisions increase
 * with no gap, and that SQLite's integrity check passes. Repeated over several kill points. Then SIGKILL in the
 * middle of a compaction pass, and the same checks after the restart.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client, credentials, makeGenericClientConstructor } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import t from 'tap';
import { Backend } from '../src/kine/backend.js';
import { etcdServices } from '../src/kine/proto.js';
import { req } from '../src/kine/requests.js';
import { silentLogger } from '../src/log.js';
import { freePort, startKineCli } from './kine-peers.js';

const KV = makeGenericClientConstructor(etcdServices().KV, 'KV');
type Unary = (
  req: object,
  cb: (err: Error | null, res: { header: { revision: string } } & Record<string, unknown>) => void,
) => void;

function call(
  client: Client,
  method: string,
  req: object,
): Promise<{ header: { revision: string } } & Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    (client as unknown as Record<string, Unary>)[method]!.call(client, req, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

async function startKine(dir: string, port: number): Promise<ChildProcess> {
  const kine = await startKineCli(dir, port, ['--auto-compaction-retention', '0'], {
    VIPMESH_LOG_LEVEL: 'info',
  });
  return kine.proc;
}

function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGKILL');
  return exited;
}

t.test('SIGKILL during a 16-client write storm loses no acknowledged write', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-crash-'));
  const port = await freePort();
  let proc: ChildProcess | undefined;
  t.teardown(async () => {
    if (proc) await kill(proc);
    rmSync(dir, { recursive: true, force: true });
  });
  const acked = new Map<string, { rev: number; value: string }>();
  // Kill points: this long after the round's first 50 acknowledgements (so every round kills mid-storm).
  const killPoints = [0, 120, 500];
  for (const [round, killAfter] of killPoints.entries()) {
    proc = await startKine(dir, port);
    // Each client has its own connection (grpc-js would otherwise share one subchannel between them).
    const clients = Array.from(
      { length: 16 },
      () =>
        new KV(`127.0.0.1:${port}`, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }),
    );
    let stop = false;
    const start = acked.size;
    let fiftyAcked: () => void = () => undefined;
    const fifty = new Promise<void>((resolve) => {
      fiftyAcked = resolve;
    });
    const storms = clients.map(async (c, i) => {
      for (let n = 0; !stop; n++) {
        const key = `r${round}/c${i}/${n}`;
        const value = `v-${round}-${i}-${n}`;
        try {
          const res = await call(c, 'Put', { key: Buffer.from(key), value: Buffer.from(value) });
          acked.set(key, { rev: Number(res.header.revision), value });
          if (acked.size === start + 50) fiftyAcked();
        } catch {
          return; // the server is gone
        }
      }
    });
    // Should the server die before 50 acknowledgements, every storm returns and the check below fails.
    await Promise.race([fifty, Promise.all(storms)]);
    await new Promise((r) => setTimeout(r, killAfter)); // the kill point, not a synchronisation
    await kill(proc);
    stop = true;
    await Promise.all(storms);
    for (const c of clients) c.close();
    t.ok(acked.size >= start + 50, `round ${round}: killed ${killAfter} ms after 50 acknowledged writes`);
  }

  proc = await startKine(dir, port);
  const client = new KV(`127.0.0.1:${port}`, credentials.createInsecure());
  const res = await call(client, 'Range', { key: Buffer.from('r'), range_end: Buffer.from('s') });
  client.close();
  await kill(proc);
  const stored = new Map<string, { rev: number; value: string }>();
  for (const kv of res['kvs'] as Array<{ key: Buffer; mod_revision: string; value: Buffer }>) {
    stored.set(kv.key.toString(), { rev: Number(kv.mod_revision), value: kv.value.toString() });
  }
  let missing = 0;
  let wrong = 0;
  for (const [key, want] of acked) {
    const got = stored.get(key);
    if (got === undefined) missing++;
    else if (got.rev !== want.rev || got.value !== want.value) wrong++;
  }
  t.equal(missing, 0, `all ${acked.size} acknowledged writes are present`);
  t.equal(wrong, 0, 'each has the revision and value it was acknowledged with');

  const db = new Database(join(dir, 'state.db'), { readonly: true });
  t.teardown(() => db.close());
  t.equal(db.pragma('integrity_check', { simple: true }), 'ok', 'PRAGMA integrity_check is ok');
  const revs = db.prepare('SELECT DISTINCT revision AS r FROM kine ORDER BY revision').all() as Array<{
    r: number;
  }>;
  let gaps = 0;
  revs.forEach((r, i) => {
    if (r.r !== i + 2) gaps++;
  });
  t.equal(gaps, 0, `revisions 2..${revs.length + 1} are all present, strictly increasing`);
  t.ok(revs.length >= acked.size, 'every acknowledged write has its own revision');
});

/** The compaction cursor and the last row id the current compact revision covers, read from the file. */
function compactionProgress(file: string): { cursor: number; target: number; compactRev: number } {
  const db = new Database(file);
  try {
    const meta = (key: string) =>
      Number(
        (db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)
          ?.value ?? 0,
      );
    const compactRev = meta('compact_rev');
    const target = (
      db.prepare('SELECT MAX(id) AS id FROM kine WHERE revision <= ?').get(compactRev) as {
        id: number | null;
      }
    ).id;
    return { cursor: meta('compact_cursor'), target: target ?? 0, compactRev };
  } finally {
    db.close();
  }
}

t.test('SIGKILL in the middle of a compaction pass loses nothing, and the pass resumes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-crash-compact-'));
  const file = join(dir, 'state.db');
  const port = await freePort();
  let proc: ChildProcess | undefined;
  t.teardown(async () => {
    if (proc) await kill(proc);
    rmSync(dir, { recursive: true, force: true });
  });
  // A backlog of 30,000 overwrites of 100 keys, written with compaction off: the first pass then takes 30
  // batches, each its own commit.
  const latest = new Map<string, { rev: number; value: string }>();
  const backend = new Backend({ file, logger: silentLogger() });
  for (let i = 0; i < 30_000; i += 500) {
    const acks = await Promise.all(
      Array.from({ length: 500 }, (_, j) => backend.put(req.put(`k${(i + j) % 100}`, `v${i + j}`))),
    );
    for (const [j, a] of acks.entries()) latest.set(`k${(i + j) % 100}`, { rev: a.rev, value: `v${i + j}` });
  }
  await backend.close();

  const compacting = ['--auto-compaction-retention', '100', '--compaction-interval', '50ms'];
  proc = (await startKineCli(dir, port, compacting)).proc;
  // Polled until the first batch of the pass is committed, then the process is killed.
  let seen = compactionProgress(file);
  while (seen.cursor === 0 && proc.exitCode === null) {
    await new Promise((r) => setImmediate(r));
    seen = compactionProgress(file);
  }
  await kill(proc);
  const after = compactionProgress(file);
  t.ok(after.compactRev > 0, `compact revision ${after.compactRev} recorded`);
  t.ok(
    after.cursor > 0 && after.cursor < after.target,
    `killed mid-pass: cursor at row ${after.cursor} of ${after.target}`,
  );

  proc = (await startKineCli(dir, port, compacting)).proc;
  const client = new KV(`127.0.0.1:${port}`, credentials.createInsecure());
  const res = await call(client, 'Range', { key: Buffer.from('k'), range_end: Buffer.from('l') });
  const stored = new Map<string, { rev: number; value: string }>();
  for (const kv of res['kvs'] as Array<{ key: Buffer; mod_revision: string; value: Buffer }>) {
    stored.set(kv.key.toString(), { rev: Number(kv.mod_revision), value: kv.value.toString() });
  }
  t.same(stored, latest, 'every key has its last acknowledged value and revision');
  // The resumed pass reaches the compact revision recorded before the kill.
  let now = compactionProgress(file);
  while (now.cursor < after.target) {
    await call(client, 'Range', { key: Buffer.from('k0') });
    now = compactionProgress(file);
  }
  client.close();
  await kill(proc);
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  t.equal(db.pragma('integrity_check', { simple: true }), 'ok', 'PRAGMA integrity_check is ok');
  t.equal(db.pragma('auto_vacuum', { simple: true }), 2, 'auto_vacuum=INCREMENTAL');
  const rows = (db.prepare('SELECT COUNT(*) AS n FROM kine').get() as { n: number }).n;
  t.ok(rows <= 30_000 - after.target + 100, `the compacted history is gone (${rows} rows left)`);
});
