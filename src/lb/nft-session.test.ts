import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { FakeClock } from '../testing/fake-clock.js';
import { until } from '../testing/until.js';
import { NftSession, type SpawnProcess } from './nft-session.js';

/**
 * A stand-in `nft -i`: reads lines, answers as the real one does (nothing on success, an error and the
 * line on refusal, the marker's error for the marker), in small pieces; `mode` makes it refuse, hang or die.
 */
const statMode = (p: string) => statSync(p).mode & 0o777;

function fakeNftI() {
  const state = {
    spawned: 0,
    lines: [] as string[],
    mode: 'ok' as 'ok' | 'refuse' | 'hang' | 'die',
    killed: 0,
    spawnFails: false,
    includes: 0,
  };
  const spawn: SpawnProcess = () => {
    if (state.spawnFails) throw new Error('spawn nft ENOENT');
    state.spawned++;
    const child = new EventEmitter() as ChildProcessWithoutNullStreams;
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    Object.assign(child, { stdin, stdout, stderr });
    child.kill = () => {
      state.killed++;
      queueMicrotask(() => child.emit('exit', null, 'SIGKILL'));
      return true;
    };
    const say = (text: string) => {
      // in two pieces, as a pipe may deliver it
      const half = Math.floor(text.length / 2);
      stderr.write(text.slice(0, half));
      stderr.write(text.slice(half));
    };
    let carets: string | undefined;
    let caretTimer: NodeJS.Timeout | undefined;
    const flushCarets = () => {
      clearTimeout(caretTimer);
      if (carets !== undefined) stderr.write(carets);
      carets = undefined;
    };
    let buf = '';
    stdin.on('data', (d: Buffer) => {
      flushCarets();
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const marker = /^list table inet (\S+)$/.exec(line);
        if (marker !== null) {
          // The carets under the marker come later, as they may through a pipe: with the next input's
          // answer, or a moment later when there is none.
          say(`Error: No such file or directory\n${line}\n`);
          carets = `                ${'^'.repeat(marker[1]!.length)}\n`;
          caretTimer = setTimeout(flushCarets, 5);
          continue;
        }
        // An update comes as `include "<file>"` (its commands one per line in the file), or on the line.
        const included = /^include "(.+)"$/.exec(line);
        state.includes += included === null ? 0 : 1;
        state.lines.push(
          included === null ? line : readFileSync(included[1]!, 'utf8').trimEnd().split('\n').join('; '),
        );
        if (state.mode === 'hang') return;
        if (state.mode === 'die') {
          child.emit('exit', 1, null);
          return;
        }
        if (state.mode === 'refuse')
          say(`Error: Could not process rule: No such file or directory\n${state.lines.at(-1)}\n  ^^^\n`);
      }
    });
    return child;
  };
  return { spawn, state };
}

t.test('an update is one line of commands; the process stays for the next', async (t) => {
  const nft = fakeNftI();
  const s = new NftSession({ spawn: nft.spawn, clock: new FakeClock() });
  t.same(await s.run(['flush chain inet vipmesh a', 'add rule inet vipmesh a accept']), { ok: true });
  t.same(await s.run(['delete element inet vipmesh svc4 { 198.51.100.1 . tcp . 80 }']), { ok: true });
  t.same(nft.state.lines, [
    'flush chain inet vipmesh a; add rule inet vipmesh a accept',
    'delete element inet vipmesh svc4 { 198.51.100.1 . tcp . 80 }',
  ]);
  t.equal(nft.state.spawned, 1, 'one nft for both updates');
  t.ok(s.running);
  s.close();
  t.notOk(s.running);
  t.match(await s.run(['add rule inet vipmesh a accept']), { ok: false, message: /closed/ });
});

t.test('updates go to nft as an include of a private scratch file, removed on close', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'vipmesh-test-scratch-'));
  t.teardown(() => rmSync(parent, { recursive: true, force: true }));
  const nft = fakeNftI();
  const s = new NftSession({ spawn: nft.spawn, clock: new FakeClock(), scratchParent: parent });
  t.same(await s.run(['add chain inet vipmesh a', 'add rule inet vipmesh a accept']), { ok: true });
  t.equal(nft.state.includes, 1, 'the update was an include');
  t.same(nft.state.lines, ['add chain inet vipmesh a; add rule inet vipmesh a accept']);
  const [dir] = readdirSync(parent);
  t.match(dir, /^vipmesh-nft-/);
  t.equal(statMode(join(parent, dir!)), 0o700, 'only the daemon reads its scratch directory');
  s.close();
  t.same(readdirSync(parent), [], 'close removes the scratch directory');
});

t.test('without a usable scratch directory updates go on the input line', async (t) => {
  const nft = fakeNftI();
  const off = new NftSession({ spawn: nft.spawn, clock: new FakeClock(), scratchParent: null });
  t.same(await off.run(['a', 'b']), { ok: true });
  const missing = new NftSession({
    spawn: nft.spawn,
    clock: new FakeClock(),
    scratchParent: join(tmpdir(), 'vipmesh-no-such-dir', 'x'),
  });
  t.same(await missing.run(['c']), { ok: true });
  const quoted = new NftSession({ spawn: nft.spawn, clock: new FakeClock(), scratchParent: '/tmp/a"b' });
  t.same(await quoted.run(['d']), { ok: true });
  t.equal(nft.state.includes, 0);
  t.same(nft.state.lines, ['a; b', 'c', 'd']);
  for (const s of [off, missing, quoted]) s.close();
});

t.test(
  'a scratch directory removed under the session: that update goes on the line, the next makes a new one',
  async (t) => {
    const parent = mkdtempSync(join(tmpdir(), 'vipmesh-test-scratch-'));
    t.teardown(() => rmSync(parent, { recursive: true, force: true }));
    const nft = fakeNftI();
    const s = new NftSession({ spawn: nft.spawn, clock: new FakeClock(), scratchParent: parent });
    t.same(await s.run(['a']), { ok: true });
    rmSync(join(parent, readdirSync(parent)[0]!), { recursive: true });
    t.same(await s.run(['b']), { ok: true });
    t.same(await s.run(['c']), { ok: true });
    t.same(nft.state.lines, ['a', 'b', 'c'], 'every update applied');
    t.equal(nft.state.includes, 2, 'the first and the last went as includes');
    t.equal(readdirSync(parent).length, 1);
    s.close();
  },
);

t.test("a refused update carries nft's error and keeps the session", async (t) => {
  const nft = fakeNftI();
  const s = new NftSession({ spawn: nft.spawn, clock: new FakeClock() });
  nft.state.mode = 'refuse';
  const r = await s.run(['flush chain inet vipmesh nope']);
  t.match(r, {
    ok: false,
    message: /^Error: Could not process rule: No such file or directory\nflush chain/,
  });
  t.notMatch(r.ok ? '' : r.message, /vipmesh_session_marker/, "the marker's own error is not the update's");
  nft.state.mode = 'ok';
  t.same(await s.run(['add rule inet vipmesh a accept']), { ok: true });
  t.equal(nft.state.spawned, 1);
});

t.test('updates are queued: each gets its own answer', async (t) => {
  const nft = fakeNftI();
  const s = new NftSession({ spawn: nft.spawn, clock: new FakeClock() });
  const all = await Promise.all([s.run(['a']), s.run(['b']), s.run(['c'])]);
  t.same(all, [{ ok: true }, { ok: true }, { ok: true }]);
  t.same(nft.state.lines, ['a', 'b', 'c']);
});

t.test('a process that dies fails the update in flight; the next update starts a new one', async (t) => {
  const nft = fakeNftI();
  const s = new NftSession({ spawn: nft.spawn, clock: new FakeClock() });
  nft.state.mode = 'die';
  t.match(await s.run(['a']), { ok: false, message: /nft -i exited \(1\)/ });
  t.notOk(s.running);
  nft.state.mode = 'ok';
  t.same(await s.run(['b']), { ok: true });
  t.equal(nft.state.spawned, 2);
});

t.test('an update nft never confirms ends the session at the timeout', async (t) => {
  const nft = fakeNftI();
  const clock = new FakeClock();
  const s = new NftSession({ spawn: nft.spawn, clock, timeoutMs: 2000 });
  nft.state.mode = 'hang';
  const p = s.run(['a']);
  await until('the update is written', () => nft.state.lines.length === 1);
  clock.advance(1999);
  clock.advance(1);
  t.match(await p, { ok: false, message: /did not confirm an update within 2000 ms/ });
  t.equal(nft.state.killed, 1, 'the stuck nft is killed');
  t.equal(clock.pending, 0);
});

t.test(
  'nft that cannot be started, and commands that span lines, are failures, not exceptions',
  async (t) => {
    const nft = fakeNftI();
    const s = new NftSession({ spawn: nft.spawn, clock: new FakeClock() });
    t.match(await s.run(['table inet vipmesh {\n}']), { ok: false, message: /spans lines/ });
    nft.state.spawnFails = true;
    t.match(await s.run(['a']), { ok: false, message: /cannot start nft -i/ });
    t.equal(nft.state.spawned, 0);
  },
);
