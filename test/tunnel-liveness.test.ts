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
