import { createHash, randomBytes } from 'node:crypto';
import { Duplex } from 'node:stream';
import fc from 'fast-check';
import t from 'tap';
import { VipmeshError } from '../errors.js';
import { createRegistry } from '../metrics.js';
import { FakeClock } from '../testing/fake-clock.js';
import { type MemoryEnd, memoryPair } from '../testing/memory-transport.js';
import { encodeData, encodeOpen } from './codec.js';
import { TunnelMetrics } from './metrics.js';
import { Session, type SessionOptions } from './session.js';
import { allowList } from './target.js';

type Opts = Partial<Omit<SessionOptions, 'role' | 'transport'>>;

function pair(common: Opts = {}, agentOpts: Opts = {}, serverOpts: Opts = {}) {
  const [a, s] = memoryPair();
  const agent = new Session({ role: 'agent', node: 'n1', transport: a, ...common, ...agentOpts });
  a.bind(agent);
  const server = new Session({ role: 'server', node: 'n1', transport: s, ...common, ...serverOpts });
  s.bind(server);
  t.teardown(() => {
    agent.close('test over');
    server.close('test over');
  });
  return { agent, server, a, s };
}

/** Two connected in-memory Duplexes: what one writes the other reads (no backpressure between them). */
function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const mk = (i: number) =>
    new Duplex({
      allowHalfOpen: true,
      read() {},
      write(chunk, _e, cb) {
        ends[1 - i]!.push(chunk);
        cb();
      },
      final(cb) {
        ends[1 - i]!.push(null);
        cb();
      },
    });
  ends.push(mk(0), mk(1));
  return [ends[0]!, ends[1]!];
}

/** A connectTarget that hands each accepted stream's far end to `onConn`. */
function targets(onConn: (remote: Duplex, local: Duplex) => void) {
  return () => {
    const [local, remote] = duplexPair();
    process.nextTick(() => {
      local.emit('connect');
      onConn(remote, local);
    });
    return local;
  };
}

const flush = () => new Promise((r) => setImmediate(r));

/** Move a fake clock by `ms` in 10 ms steps, letting frames flow between steps. */
async function run(clock: FakeClock, ms: number): Promise<void> {
  for (let done = 0; done < ms; done += 10) {
    clock.advance(Math.min(10, ms - done));
    await flush();
  }
}
const readAll = async (s: NodeJS.ReadableStream) => {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
};

t.test('requests and pushes both ways, with the peer error codes', async (t) => {
  const handlers = new Map<string, (p: unknown) => unknown>([
    ['add', (p) => (p as { a: number; b: number }).a + (p as { a: number; b: number }).b],
    ['fail', () => Promise.reject(new VipmeshError('VIPMESH_POOL_OVERLAP', 'pools overlap'))],
    ['crash', () => Promise.reject(new Error('boom'))],
  ]);
  const { agent, server } = pair({}, {}, { handlers });
  t.equal(await agent.request('add', { a: 2, b: 3 }), 5);
  await t.rejects(agent.request('fail'), { code: 'VIPMESH_POOL_OVERLAP', message: 'pools overlap' });
  await t.rejects(agent.request('crash'), { code: 'VIPMESH_TUNNEL_REMOTE_ERROR', message: 'boom' });
  await t.rejects(agent.request('nope'), { code: 'VIPMESH_TUNNEL_NO_HANDLER' });
  await t.rejects(server.request('add', { a: 1, b: 1 }), { code: 'VIPMESH_TUNNEL_NO_HANDLER' });
  const got = new Promise((r) => agent.once('push', (topic, payload) => r({ topic, payload })));
  server.push('assignments', { vips: ['198.51.100.10'] });
  t.same(await got, { topic: 'assignments', payload: { vips: ['198.51.100.10'] } });
});

t.test('a request times out on the clock, and a closed session fails what is pending', async (t) => {
  const clock = new FakeClock();
  const never = new Map([['hang', () => new Promise(() => {})]]);
  const { agent, server } = pair({ clock, requestTimeoutMs: 2000 }, {}, { handlers: never });
  const p = agent.request('hang');
  let settled = false;
  p.catch(() => {}).finally(() => (settled = true));
  await run(clock, 1990);
  t.notOk(settled, 'still waiting before the timeout');
  await run(clock, 20);
  await t.rejects(p, { code: 'VIPMESH_TUNNEL_TIMEOUT' });
  const q = agent.request('hang', null, { timeoutMs: 60_000 });
  const s = agent.dial('tcp', '127.0.0.1:80');
  const streamErr = new Promise((r) => s.once('error', r));
  server.close('going away');
  await t.rejects(q, { code: 'VIPMESH_TUNNEL_SESSION_CLOSED' });
  t.match(await streamErr, { code: 'VIPMESH_TUNNEL_SESSION_CLOSED' });
  await flush();
  await flush();
  t.match(agent.closedReason, /closed by peer: going away/);
  await t.rejects(agent.request('x'), { code: 'VIPMESH_TUNNEL_SESSION_CLOSED' });
  const late = agent.dial('tcp', '127.0.0.1:80');
  const lateErr = await new Promise((r) => late.once('error', r));
  t.match(lateErr, { code: 'VIPMESH_TUNNEL_SESSION_CLOSED' });
});

t.test('heartbeats: the peer is dead after 3 missed beats, not before; RTT is measured', async (t) => {
  const clock = new FakeClock();
  const registry = createRegistry();
  const metrics = new TunnelMetrics(registry, 'server');
  const { agent, server, a } = pair({ clock, heartbeatMs: 100, misses: 3 }, {}, { metrics });
  for (let i = 0; i < 20; i++) {
    clock.advance(50);
    await flush();
  }
  t.equal(server.closedReason, undefined, 'alive while beats flow');
  t.ok(server.rttMs >= 0, 'server measured a heartbeat RTT');
  t.match(await registry.metrics(), /vipmesh_tunnel_heartbeat_rtt_seconds_count\{role="server"\} \d+/);
  a.cut = true;
  const cutAt = clock.now();
  let lostAt = 0;
  server.once('close', () => {
    lostAt = clock.now();
  });
  agent.once('close', () => {});
  for (let i = 0; i < 40 && lostAt === 0; i++) {
    clock.advance(10);
    await flush();
  }
  t.match(server.closedReason, /heartbeat timeout/);
  t.ok(lostAt - cutAt <= 300, `declared dead ${lostAt - cutAt} ms after the cut (3 beats = 300 ms)`);
  t.ok(lostAt - cutAt >= 200, 'not before the beats were really missed');
  t.match(agent.closedReason ?? '', /heartbeat timeout|closed by peer/);
});

t.test(
  'liveness armed: the tunnel gets the long bound and rarer heartbeats; disarmed, the short one again',
  async (t) => {
    const clock = new FakeClock();
    const { agent, server, a } = pair({ clock, heartbeatMs: 100, misses: 3, tunnelTimeoutMs: 2000 });
    let frames = 0;
    const send = a.send.bind(a);
    a.send = (f, w) => {
      frames++;
      send(f, w);
    };
    server.setLivenessArmed(true);
    agent.setLivenessArmed(true);
    t.ok(server.livenessArmed);
    await run(clock, 2000);
    t.ok(
      frames <= 12,
      `the agent sent ${frames} frames in 2 s: heartbeats every 500 ms and their answers (40 unarmed)`,
    );
    a.cut = true;
    const cutAt = clock.now();
    let lostAt = 0;
    server.once('close', () => {
      lostAt = clock.now();
    });
    agent.once('close', () => {});
    await run(clock, 1000);
    t.equal(
      server.closedReason,
      undefined,
      'a second of tunnel silence is not a dead peer while datagrams flow',
    );
    await run(clock, 1500);
    t.match(server.closedReason, /heartbeat timeout/);
    t.ok(lostAt - cutAt <= 2500, `the tunnel bound still holds: lost ${lostAt - cutAt} ms after the cut`);

    const p2 = pair({ clock, heartbeatMs: 100, misses: 3, tunnelTimeoutMs: 2000 });
    p2.server.setLivenessArmed(true);
    p2.agent.setLivenessArmed(true);
    await run(clock, 1000);
    p2.a.cut = true;
    const cut2 = clock.now();
    p2.agent.once('close', () => {});
    p2.server.setLivenessArmed(false);
    t.equal(p2.server.closedReason, undefined, 'disarming is not a verdict on what was heard before');
    await run(clock, 300);
    t.match(
      p2.server.closedReason,
      /heartbeat timeout/,
      'lost by the short bound, counted from the disarming',
    );
    t.ok(clock.now() - cut2 <= 310);
  },
);

/**
 * A fake clock whose now() runs `lag` ms ahead of its timers: what a blocked event loop looks like from
 * inside a timer callback.
 */
function laggingClock() {
  const fake = new FakeClock();
  const c = {
    fake,
    lag: 0,
    clock: {
      now: () => fake.now() + c.lag,
      setTimeout: fake.setTimeout.bind(fake),
      clearTimeout: fake.clearTimeout.bind(fake),
    },
  };
  return c;
}

t.test('a late deadline timer (our own loop blocked) gives the peer one more I/O poll', async (t) => {
  const lagging = laggingClock();
  const { fake, clock } = lagging;
  const { server } = pair({ clock, heartbeatMs: 100, misses: 3 });
  lagging.lag = 1000;
  fake.advance(300);
  t.equal(server.closedReason, undefined, 'not declared dead by a timer that ran late');
  await flush();
  fake.advance(0);
  t.equal(server.closedReason, undefined, 'the frames that were waiting kept it alive');
});

t.test('our own stall is not held against a silent peer; a gone peer is still lost after it', async (t) => {
  const lagging = laggingClock();
  const { fake, clock } = lagging;
  const { server, a } = pair({ clock, heartbeatMs: 100, misses: 3 });
  for (let i = 0; i < 10; i++) {
    fake.advance(50);
    await flush();
  }
  a.cut = true;
  const cutAt = fake.now();
  let lostAt = 0;
  server.once('close', () => {
    lostAt = fake.now();
  });
  fake.advance(100);
  await flush();
  lagging.lag = 200; // the server's loop is blocked for 200 ms: its next timers run that late
  for (let i = 0; i < 60 && lostAt === 0; i++) {
    fake.advance(10);
    await flush();
  }
  t.match(server.closedReason, /heartbeat timeout: .*this side's own event loop was stalled/);
  const waited = lostAt - cutAt + 200;
  t.ok(
    waited >= 450 && waited <= 550,
    `lost ${waited} ms after the cut: 300 ms of silence plus the 200 ms stall`,
  );
});

t.test('streams: echo, half-close in both directions, ids released', async (t) => {
  const { agent, server } = pair(
    {},
    {
      allow: allowList(['127.0.0.1:7']),
      connectTarget: targets((remote) => {
        remote.pipe(remote);
      }),
    },
  );
  const s = server.dial('tcp', '127.0.0.1:7');
  t.equal(s.id % 2, 0, 'server-opened ids are even');
  const connected = new Promise((r) => s.once('connect', r));
  s.end('ping');
  await connected;
  t.equal((await readAll(s)).toString(), 'ping');
  await flush();
  t.equal(server.streamCount, 0, 'the dialer forgot the stream');
  t.equal(agent.streamCount, 0, 'the acceptor forgot the stream');
});

t.test('a refused or failed dial fails only that stream', async (t) => {
  const { agent, server } = pair(
    {},
    {
      allow: allowList(['127.0.0.1:7', '127.0.0.1:9']),
      maxStreams: 3,
      connectTarget: (target) => {
        const [local] = duplexPair();
        process.nextTick(() =>
          target.port === 9
            ? local.emit('error', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))
            : local.emit('connect'),
        );
        return local;
      },
    },
    { handlers: new Map([['ping', () => 'pong']]) },
  );
  const refused = server.dial('tcp', '127.0.0.1:8');
  const err = await new Promise<Error>((r) => refused.once('error', r));
  t.match(err, { code: 'VIPMESH_TUNNEL_DIAL_REFUSED' });
  t.match(err.message, /allow-list/);
  const failed = server.dial('tcp', '127.0.0.1:9');
  t.match(await new Promise((r) => failed.once('error', r)), { code: 'VIPMESH_TUNNEL_DIAL_FAILED' });
  t.throws(() => server.dial('udp', '127.0.0.1:7'), { code: 'VIPMESH_TUNNEL_BAD_TARGET' });
  const open = Array.from({ length: 3 }, () => server.dial('tcp', '127.0.0.1:7'));
  await Promise.all(open.map((s) => new Promise((r) => s.once('connect', r))));
  const tooMany = server.dial('tcp', '127.0.0.1:7');
  const tooManyErr = await new Promise<Error>((r) => tooMany.once('error', r));
  t.match(tooManyErr, { code: 'VIPMESH_TUNNEL_DIAL_REFUSED', message: /too many streams \(3\)/ });
  for (const s of open) s.destroy();
  t.throws(() => server.dial('tcp', '127.0.0.1'), { code: 'VIPMESH_TUNNEL_BAD_TARGET' });
  t.equal(await agent.request('ping'), 'pong', 'the session is still up');
  t.equal(server.closedReason, undefined);
});

t.test('flow control: a stalled reader holds at most its window and slows only its own stream', async (t) => {
  const window = 64 * 1024;
  const feeds: Duplex[] = [];
  const {
    agent,
    server,
    s: serverEnd,
  } = pair(
    { windowBytes: window },
    {
      allow: allowList(['127.0.0.1:1', '127.0.0.1:2']),
      connectTarget: targets((remote) => feeds.push(remote)),
    },
  );
  serverEnd.record = true;
  const stalled = server.dial('tcp', '127.0.0.1:1');
  const busy = server.dial('tcp', '127.0.0.1:2');
  await Promise.all([
    new Promise((r) => stalled.once('connect', r)),
    new Promise((r) => busy.once('connect', r)),
  ]);
  await flush();
  const big = randomBytes(1 << 20);
  // The agent side pushes 1 MiB into each stream; nobody reads `stalled`.
  const [feedStalled, feedBusy] = feeds;
  feedStalled!.end(big);
  feedBusy!.end(big);
  const got = await readAll(busy);
  t.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(big).digest('hex'));
  t.ok(
    stalled.readableLength <= window,
    `stalled stream buffers ${stalled.readableLength} <= ${window} bytes`,
  );
  t.ok(stalled.peerCredit >= 0, 'the sender never went past its credit');
  t.equal(agent.closedReason, undefined);
  // Now read it: the rest flows, intact.
  const rest = await readAll(stalled);
  t.equal(rest.length, big.length);
  t.ok(rest.equals(big), 'the stalled stream delivers everything once read');
});

t.test('a peer that sends past its credit gets that stream reset, the session survives', async (t) => {
  const window = 1024;
  const { agent, server, a } = pair(
    { windowBytes: window },
    { handlers: new Map([['ok', () => true]]) },
    { allow: allowList(['127.0.0.1:5']), connectTarget: targets(() => {}) },
  );
  const s = agent.dial('tcp', '127.0.0.1:5');
  await new Promise((r) => s.once('connect', r));
  const reset = new Promise((r) => s.once('error', r));
  // Bypass the stream: put 2 KiB of DATA straight on the wire.
  a.send(encodeData(s.id, Buffer.alloc(2048)));
  t.match(await reset, { code: 'VIPMESH_TUNNEL_FLOW' }, 'the sender learns why');
  t.equal(server.streamCount, 0, 'the server reset the stream');
  t.equal(await server.request('ok'), true, 'the session is still up');
});

t.test('protocol violations close the session with a reason', async (t) => {
  const { server, a } = pair();
  a.send(encodeOpen(2, 1024, 'tcp:127.0.0.1:1')); // even ids are the server's to open
  await flush();
  t.match(server.closedReason, /protocol error: OPEN with stream id 2/);
  const p2 = pair();
  p2.a.send(Buffer.from('0702', 'hex'));
  await flush();
  t.match(p2.server.closedReason, /protocol error: short frame/);
});

t.test('stream aborts travel: destroy() is a CLOSE, destroy(err) an ERROR with its code', async (t) => {
  const locals: Duplex[] = [];
  // The agent opens (odd ids), the server accepts into an in-memory target.
  const p = pair(
    {},
    {},
    { allow: allowList(['127.0.0.1:5']), connectTarget: targets((_r, l) => locals.push(l)) },
  );
  const s1 = p.agent.dial('tcp', '127.0.0.1:5');
  await new Promise((r) => s1.once('connect', r));
  await flush();
  const closed = new Promise((r) => locals.at(-1)!.once('close', r));
  s1.destroy();
  await closed;
  t.pass("destroy() on the dialer closes the acceptor's connection to its target");
  const s2 = p.agent.dial('tcp', '127.0.0.1:5');
  await new Promise((r) => s2.once('connect', r));
  await flush();
  const closed2 = new Promise((r) => locals.at(-1)!.once('close', r));
  s2.on('error', () => {});
  s2.destroy(new VipmeshError('VIPMESH_TUNNEL_STREAM_RESET', 'reset by test'));
  await closed2;
  t.equal(p.server.streamCount, 0, 'the acceptor forgot the stream');
  t.equal(p.agent.streamCount, 0, 'the dialer forgot the stream');
});

t.test(
  'fuzz: arbitrary frames never throw; they are handled or close the session with a reason',
  async (t) => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 8 }), async (frames) => {
        const [a, b] = memoryPair();
        const s = new Session({ role: 'server', node: 'fuzz', transport: b });
        b.bind(s);
        const end: MemoryEnd = a;
        for (const f of frames) s.receive(Buffer.from(f));
        await flush();
        const ok = s.closedReason === undefined || /protocol error|closed/.test(s.closedReason);
        s.close('done');
        end.close(1000, 'done');
        return ok;
      }),
      { numRuns: 300 },
    );
    t.pass('no frame threw');
  },
);
