/**
 * A stalled agent is not a dead one: an agent process whose main thread is blocked for a second (as by a
 * long garbage collection) keeps its node while its liveness thread pings; the same agent without liveness
 * datagrams loses it. Real TLS, a real agent process, loopback.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { tempDir } from '../src/testing/tmp.js';
import { createTunnelServer } from '../src/testing/tunnel-server.js';

const ROOT = join(import.meta.dirname, '..');

async function stallOnce(t: Test, liveness: boolean) {
  const srv = await createTunnelServer({ dataDir: tempDir('vipmesh-live-'), port: 0, host: '127.0.0.1' });
  t.teardown(() => srv.close());
  const lost: string[] = [];
  srv.tunnel.on('node-lost', (e) => lost.push(e.reason));
  const agent = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'test/tunnel-fixtures/agent.ts',
      '--server',
      srv.url,
      '--token',
      srv.credentials.joinToken,
      '--node',
      'pi1',
      '--data-dir',
      tempDir('vipmesh-live-agent-'),
      '--stall',
      '1000',
      ...(liveness ? [] : ['--no-liveness']),
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => agent.kill('SIGKILL'));
  const lines = createInterface({ input: agent.stdout! });
  const next = (event: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const on = (line: string) => {
        const e = JSON.parse(line) as { event: string };
        if (e.event !== event) return;
        lines.off('line', on);
        resolve(e);
      };
      lines.on('line', on);
      agent.once('exit', (code) => reject(new Error(`the agent exited (${code}) before "${event}"`)));
    });
  await next('connected');
  const session = srv.tunnel.sessions.get('pi1')!;
  if (liveness && !session.livenessArmed) await once(session, 'liveness');
  agent.kill('SIGUSR2');
  const stalled = await next('stalled');
  return { srv, session, lost, stalled };
}

t.test('an agent stalled for 1 s keeps its node while its liveness thread pings', async (t) => {
  const { srv, session, lost, stalled } = await stallOnce(t, true);
  t.ok(Number(stalled.ms) >= 1000, `the agent's main thread was blocked ${stalled.ms} ms`);
  t.same(lost, [], 'no node-lost');
  t.equal(srv.tunnel.sessions.get('pi1'), session, 'the same session');
  await t.rejects(
    srv.tunnel.request('pi1', 'no-such-method'),
    { code: 'VIPMESH_TUNNEL_NO_HANDLER' },
    'and it answers',
  );
  t.ok(srv.tunnel.metrics.liveness!().received > 10, 'the pings went on through the stall');
});

t.test('without liveness datagrams the same stall loses the node', async (t) => {
  const { session, lost, stalled } = await stallOnce(t, false);
  t.ok(Number(stalled.ms) >= 1000);
  t.equal(lost.length, 1, 'node-lost during the stall');
  t.match(lost[0], /heartbeat timeout/);
  t.notOk(session.livenessArmed);
});

/** A side of a liveness session in its own process (test/tunnel-fixtures/liveness-hub.ts) and its lines. */
function hubProcess(t: Test, args: string[]) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/tunnel-fixtures/liveness-hub.ts', ...args],
    {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  t.teardown(() => {
    child.kill('SIGCONT');
    child.stdin.end();
  });
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
    for (const w of waiters.splice(0)) w();
  });
  const line = async (re: RegExp): Promise<string> => {
    for (;;) {
      const found = lines.find((l) => re.test(l));
      if (found !== undefined) return found;
      if (exited) throw new Error(`${args[0]} exited without a line matching ${re}: ${lines.join(' | ')}`);
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return { child, lines, line };
}

t.test(
  'a stall of the whole host (both ends frozen at once) is not taken for a dead peer by either end',
  async (t) => {
    // Both processes are stopped together for 400 ms, almost three times the 150 ms bound: whichever thread
    // wakes first has read nothing from the other, which has not run either, so judging on the spot would
    // call it lost; each waits a third of its bound from the wake-up instead.
    const server = hubProcess(t, ['serve', '--dead', '150', '--interval', '50']);
    const grant = (await server.line(/^grant /)).slice('grant '.length);
    const agent = hubProcess(t, ['call', grant]);
    await Promise.all([server.line(/^armed$/), agent.line(/^armed$/)]);
    for (let round = 0; round < 3; round++) {
      server.child.kill('SIGSTOP');
      agent.child.kill('SIGSTOP');
      // The stall itself: real time that passes while both are frozen.
      await new Promise((r) => setTimeout(r, 400));
      server.child.kill('SIGCONT');
      agent.child.kill('SIGCONT');
      // Long enough after the wake-up for a verdict: the bound from the last datagram heard.
      await new Promise((r) => setTimeout(r, 300));
    }
    t.same(
      server.lines.filter((l) => l.startsWith('lost')),
      [],
      'the server did not lose the agent',
    );
    t.same(
      agent.lines.filter((l) => l.startsWith('lost')),
      [],
      'the agent did not lose the server',
    );
    // And a real silence is still found: the agent frozen alone.
    agent.child.kill('SIGSTOP');
    const lost = await server.line(/^lost /);
    t.ok(Number(lost.split(' ')[1]) >= 150, `the server lost the agent frozen alone (${lost})`);
  },
);
