import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { VipmeshError } from '../errors.js';
import { createRegistry } from '../metrics.js';
import { FakeClock } from '../testing/fake-clock.js';
import { type MemoryEnd, memoryPair } from '../testing/memory-transport.js';
import { tempDir } from '../testing/tmp.js';
import { caHashOf } from '../util/ca-pin.js';
import { Backoff } from './backoff.js';
import { TunnelClient, type TunnelClientOptions } from './client.js';
import type { Connection, Connector, OpenOptions } from './connector.js';
import { Session } from './session.js';

/** A temporary directory, removed when the test process exits. */
t.test('backoff: first retry within 100 ms, doubling, capped at 5 s, with jitter', async (t) => {
  const lo = new Backoff({ random: () => 0 });
  const hi = new Backoff({ random: () => 0.999999 });
  const los = Array.from({ length: 9 }, () => lo.next());
  const his = Array.from({ length: 9 }, () => hi.next());
  t.same(los, [50, 100, 200, 400, 800, 1600, 2500, 2500, 2500]);
  t.ok(his[0]! < 100 && his[0]! > 99, 'first retry within 100 ms');
  t.ok(his.every((d) => d < 5000) && his[8]! > 4999, 'never past the 5 s cap');
  t.equal(lo.attempts, 9);
  lo.reset();
  t.equal(lo.next(), 50, 'reset starts over');
  t.equal(lo.next(false), 100, 'a failure that does not escalate keeps the delay');
  t.equal(lo.next(false), 100);
});

const PEM = '-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n';
const CA_HASH = caHashOf(PEM);
const TOKEN = `K10${CA_HASH}::server:abcdef0123456789`;

interface Attempt {
  url: string;
  at: number;
  headers: Record<string, string>;
}

/** A connector whose server is in-memory, driven by the test: `fail` decides each attempt's fate. */
function fakeServer(clock: FakeClock) {
  const attempts: Attempt[] = [];
  const sessions: Session[] = [];
  const ends: MemoryEnd[] = [];
  const state = {
    /** undefined: accept; 'silent': nothing answers (rejected after the TCP timeout); else an error code. */
    fail: undefined as undefined | 'silent' | string,
  };
  const connector: Connector = {
    fetchCA: async () => PEM,
    open(url: string, o: OpenOptions): Promise<Connection> {
      attempts.push({ url, at: clock.now(), headers: o.headers });
      if (state.fail === 'silent') {
        return new Promise((_, reject) =>
          clock.setTimeout(
            () =>
              reject(
                new VipmeshError('VIPMESH_TUNNEL_CONNECT', 'TCP connect timed out', {
                  details: { silent: true },
                }),
              ),
            o.tcpTimeoutMs,
          ),
        );
      }
      if (state.fail !== undefined) return Promise.reject(new VipmeshError(state.fail, 'refused'));
      const [agentEnd, serverEnd] = memoryPair();
      const s = new Session({
        role: 'server',
        node: o.headers['x-vipmesh-node']!,
        transport: serverEnd,
        clock,
      });
      serverEnd.bind(s);
      s.once('hello', () => s.hello({ heartbeatMs: 100 }));
      sessions.push(s);
      ends.push(agentEnd);
      return Promise.resolve({ transport: agentEnd, bind: (x) => agentEnd.bind(x) });
    },
  };
  return { attempts, sessions, ends, state, connector };
}

const flush = () => new Promise((r) => setImmediate(r));
async function run(clock: FakeClock, ms: number, until?: () => boolean): Promise<number> {
  const start = clock.now();
  for (let done = 0; done < ms; done += 5) {
    clock.advance(5);
    await flush();
    if (until?.()) break;
  }
  return clock.now() - start;
}

function client(clock: FakeClock, connector: Connector, extra: Partial<TunnelClientOptions> = {}) {
  const c = new TunnelClient({
    servers: ['https://a:6443', 'https://b:6443'],
    token: TOKEN,
    caHash: CA_HASH,
    node: 'pi1',
    dataDir: tempDir('vipmesh-tc-'),
    clock,
    random: () => 0.5,
    registry: createRegistry(),
    connector,
    ...extra,
  });
  t.teardown(() => c.close());
  return c;
}

t.test('connects, and after a lost session retries within 100 ms from the first server', async (t) => {
  const clock = new FakeClock();
  const srv = fakeServer(clock);
  const c = client(clock, srv.connector);
  const events: string[] = [];
  c.on('connected', (e) => events.push(`connected ${e.url} reconnect=${e.reconnect}`));
  c.on('disconnected', (e) => events.push(`disconnected ${e.reason}`));
  await c.connect();
  t.ok(c.session, 'has a session');
  srv.sessions[0]!.close('server restart', 1001);
  const lostAt = clock.now();
  await run(clock, 1000, () => events.length >= 3);
  t.same(events.slice(0, 2), [
    'connected https://a:6443 reconnect=false',
    'disconnected closed by peer: server restart',
  ]);
  t.equal(events[2], 'connected https://a:6443 reconnect=true');
  t.ok(srv.attempts[1]!.at - lostAt < 100, `retried ${srv.attempts[1]!.at - lostAt} ms after the loss`);
  t.equal(
    srv.attempts[0]!.headers['x-vipmesh-node-password'],
    srv.attempts[1]!.headers['x-vipmesh-node-password'],
  );
  t.equal(srv.attempts[0]!.headers['authorization'], `Bearer ${TOKEN}`);
  t.equal(c.metrics.reconnects, 1);
});

t.test('failures the server answers back off exponentially across the servers in order', async (t) => {
  const clock = new FakeClock();
  const srv = fakeServer(clock);
  srv.state.fail = 'VIPMESH_TUNNEL_CONNECT';
  const c = client(clock, srv.connector, { servers: ['https://a:1', 'https://b:1', 'https://c:1'] });
  void c.connect().catch(() => {});
  await run(clock, 12_000);
  const urls = srv.attempts.map((a) => a.url.slice(8, 9)).join('');
  t.match(urls, /^(abc)+a?b?$/, `servers tried in order (${urls})`);
  const gaps = srv.attempts.slice(1).map((a, i) => a.at - srv.attempts[i]!.at);
  // random 0.5 -> 3/4 of min(cap, 100 * 2^n), on 5 ms steps
  t.same(
    gaps.slice(0, 7).map((g) => Math.round(g / 5) * 5),
    [75, 150, 300, 600, 1200, 2400, 3750],
  );
  srv.state.fail = undefined;
  await run(clock, 5000, () => c.session !== undefined);
  t.ok(c.session, 'comes back when the server does');
});

t.test(
  'a network that says nothing is retried without growing the backoff; back within 1 s of its return',
  async (t) => {
    const clock = new FakeClock();
    const srv = fakeServer(clock);
    const c = client(clock, srv.connector, { heartbeatMs: 100, misses: 3 }); // TCP timeout 400 ms by default
    await c.connect();
    // The cable is pulled in the middle of a heartbeat: frames in flight are lost, nothing answers.
    await run(clock, 50);
    srv.state.fail = 'silent';
    srv.ends[0]!.cut = true;
    const agentEnd = c.session!;
    let lost = false;
    c.once('disconnected', () => {
      lost = true;
    });
    await run(clock, 400, () => lost);
    t.ok(lost, 'the agent noticed the dead server within 3 heartbeats');
    await run(clock, 10_000);
    const gaps = srv.attempts.slice(2).map((a, i) => a.at - srv.attempts[i + 1]!.at);
    t.ok(gaps.length >= 15, `kept trying (${srv.attempts.length} attempts)`);
    t.ok(
      gaps.every((g) => g <= 500),
      `every attempt within 500 ms of the previous (max ${Math.max(...gaps)})`,
    );
    srv.state.fail = undefined;
    const back = await run(clock, 2000, () => c.session !== undefined && c.session !== agentEnd);
    t.ok(back <= 1000, `reconnected ${back} ms after the network returned`);
  },
);

t.test('a refused token stops the client; the node password is made once, mode 0600', async (t) => {
  const clock = new FakeClock();
  const srv = fakeServer(clock);
  srv.state.fail = 'VIPMESH_TUNNEL_UNAUTHORIZED';
  const dataDir = tempDir('vipmesh-tc-');
  const c = client(clock, srv.connector, { dataDir });
  await t.rejects(c.connect(), { code: 'VIPMESH_TUNNEL_UNAUTHORIZED' });
  await run(clock, 10_000);
  t.equal(srv.attempts.length, 1, 'no retry after a 401');
  const pwFile = join(dataDir, 'agent', 'node-password');
  t.equal(statSync(pwFile).mode & 0o777, 0o600);
  t.equal(readFileSync(pwFile, 'utf8').trim(), srv.attempts[0]!.headers['x-vipmesh-node-password']);
  t.equal(readFileSync(join(dataDir, 'agent', 'server-ca.crt'), 'utf8'), PEM, 'the pinned CA is cached');
  t.throws(() => c.dial('tcp', '127.0.0.1:1'), { code: 'VIPMESH_TUNNEL_NO_SESSION' });
  await t.rejects(c.request('x'), { code: 'VIPMESH_TUNNEL_NO_SESSION' });
  t.throws(() => new TunnelClient({ servers: [], token: TOKEN, caHash: CA_HASH, node: 'x', dataDir }), {
    code: 'VIPMESH_TUNNEL_CONNECT',
  });
});

t.test('close() ends a client that is waiting to retry', async (t) => {
  const clock = new FakeClock();
  const srv = fakeServer(clock);
  srv.state.fail = 'VIPMESH_TUNNEL_CONNECT';
  const c = client(clock, srv.connector);
  void c.connect().catch(() => {});
  await run(clock, 1000);
  const n = srv.attempts.length;
  await c.close();
  await run(clock, 10_000);
  t.equal(srv.attempts.length, n, 'no attempt after close');
});

t.test('the neighbour probe runs only while nothing answers, never with a session', async (t) => {
  const clock = new FakeClock();
  const srv = fakeServer(clock);
  const log: string[] = [];
  let running = false;
  const neighbourProbe = {
    start() {
      if (!running) log.push('start');
      running = true;
    },
    stop() {
      if (running) log.push('stop');
      running = false;
    },
  };
  const c = client(clock, srv.connector, { heartbeatMs: 100, misses: 3, neighbourProbe });
  c.on('connected', () => log.push(`connected (probe ${running ? 'running' : 'off'})`));
  await c.connect();
  t.same(log, ['connected (probe off)'], 'not started by a first connect that works');
  srv.state.fail = 'silent';
  srv.ends[0]!.cut = true;
  await run(clock, 2000);
  t.same(log, ['connected (probe off)', 'start'], 'started when the session was lost');
  t.ok(running, 'and kept running through silent attempts');
  srv.state.fail = undefined;
  await run(clock, 1000, () => c.session !== undefined);
  t.same(
    log,
    ['connected (probe off)', 'start', 'stop', 'connected (probe off)'],
    'stopped before connected',
  );

  srv.state.fail = 'VIPMESH_TUNNEL_CONNECT';
  srv.sessions.at(-1)!.close('server restart', 1001);
  await run(clock, 300);
  t.notOk(running, 'a server that answers (with a refusal) needs no probe');
  srv.state.fail = 'silent';
  await run(clock, 3000);
  t.ok(running);
  const closed = c.close();
  t.notOk(running, 'close() stops it');
  await run(clock, 1000);
  await closed;
  t.notOk(running, 'and the attempt it interrupted does not restart it');
});
