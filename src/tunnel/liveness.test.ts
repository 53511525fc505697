/**
 * Liveness datagrams through the real native thread and real UDP on loopback. The datagrams the tests forge
 * are built here from the wire format in liveness.ts, independently of the thread's own encoder.
 */
import { createHmac } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { createRegistry } from '../metrics.js';
import { tempDir } from '../testing/tmp.js';
import { createTunnelServer } from '../testing/tunnel-server.js';
import { TunnelClient } from './client.js';
import { grantOf, type LivenessGrant, LivenessHub, type LivenessPeer } from './liveness.js';
import { TunnelMetrics } from './metrics.js';

/** A peer that records what its hub tells it, with promises to wait for each. */
function recorder() {
  let armed!: () => void;
  let lost!: (ms: number) => void;
  const r = {
    armed: new Promise<void>((res) => (armed = res)),
    lost: new Promise<number>((res) => (lost = res)),
    isArmed: false,
    isLost: false,
  };
  const peer: LivenessPeer = {
    armed: () => {
      r.isArmed = true;
      armed();
    },
    lost: (ms) => {
      r.isLost = true;
      lost(ms);
    },
  };
  // The same object the callbacks set: a copy would never see isArmed or isLost change.
  return Object.assign(r, { peer });
}

function datagram(o: { kind: number; id: string; counter: bigint; key: Buffer; tag?: Buffer }): Buffer {
  const b = Buffer.alloc(40);
  b.write('VMLV', 0, 'latin1');
  b[4] = 1;
  b[5] = o.kind;
  Buffer.from(o.id, 'hex').copy(b, 8);
  b.writeBigUInt64BE(o.counter, 16);
  const tag = o.tag ?? createHmac('sha256', o.key).update(b.subarray(0, 24)).digest().subarray(0, 16);
  tag.copy(b, 24);
  return b;
}

/** A UDP socket on loopback that collects what it receives. */
async function udpPeer(): Promise<{ sock: Socket; got: Buffer[]; next(): Promise<Buffer> }> {
  const sock = createSocket('udp4');
  const got: Buffer[] = [];
  const waiters: Array<(b: Buffer) => void> = [];
  sock.on('message', (b) => {
    const w = waiters.shift();
    if (w !== undefined) w(b);
    else got.push(b);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  t.teardown(() => sock.close());
  return {
    sock,
    got,
    next: () => {
      const b = got.shift();
      return b !== undefined ? Promise.resolve(b) : new Promise((r) => waiters.push(r));
    },
  };
}

async function serverHub(): Promise<LivenessHub> {
  const hub = await LivenessHub.listen('127.0.0.1', 0);
  t.teardown(() => hub.close());
  return hub;
}

/** A server hub and an agent hub with one session between them, both sides armed. */
async function armedPair(timing: { intervalMs: number; deadAfterMs: number }, host = '127.0.0.1') {
  const server = await serverHub();
  const agent = LivenessHub.start();
  t.teardown(() => agent.close());
  const atServer = recorder();
  const link = server.expect(timing, atServer.peer);
  const atAgent = recorder();
  agent.call(host, link.grant, atAgent.peer);
  await Promise.all([atServer.armed, atAgent.armed]);
  return { server, agent, link, atServer, atAgent };
}

/** A server hub expecting one session whose datagrams the test forges from a UDP socket of its own. */
async function forgedSession(timing: { intervalMs: number; deadAfterMs: number }) {
  const hub = await serverHub();
  const rec = recorder();
  const { grant } = hub.expect(timing, rec.peer);
  return { hub, rec, grant, key: Buffer.from(grant.key, 'base64'), agent: await udpPeer() };
}

t.test('a ping that verifies is answered with an ack and arms the session', async (t) => {
  const { hub, rec, grant, key, agent } = await forgedSession({ intervalMs: 20, deadAfterMs: 60_000 });
  agent.sock.send(datagram({ kind: 1, id: grant.id, counter: 7n, key }), hub.port, '127.0.0.1');
  const ack = await agent.next();
  await rec.armed;
  t.same(ack, datagram({ kind: 2, id: grant.id, counter: 7n, key }), 'the ack echoes the counter, tagged');
  t.match(
    hub.counts,
    { received: 1, rejected: 0, sent: 1, longestSilenceMs: 0, longSilences: 0, majorFaults: Number },
    'arming ends no silence',
  );
});

t.test('forged, replayed, unknown and malformed datagrams are dropped and counted', async (t) => {
  const { hub, rec, grant, key, agent } = await forgedSession({ intervalMs: 20, deadAfterMs: 60_000 });
  const send = (b: Buffer) => agent.sock.send(b, hub.port, '127.0.0.1');
  send(datagram({ kind: 1, id: grant.id, counter: 1n, key: Buffer.alloc(32) })); // wrong key
  send(datagram({ kind: 1, id: grant.id, counter: 1n, key, tag: Buffer.alloc(16) })); // bad tag
  send(datagram({ kind: 1, id: '0123456789abcdef', counter: 1n, key })); // no such session
  send(datagram({ kind: 2, id: grant.id, counter: 1n, key })); // an ack sent to the server
  send(datagram({ kind: 1, id: grant.id, counter: 1n, key }).subarray(0, 39)); // short
  send(datagram({ kind: 1, id: grant.id, counter: 5n, key })); // the one that counts
  await agent.next();
  t.notOk(rec.isLost);
  send(datagram({ kind: 1, id: grant.id, counter: 5n, key })); // replayed
  send(datagram({ kind: 1, id: grant.id, counter: 4n, key })); // older
  send(datagram({ kind: 1, id: grant.id, counter: 6n, key }));
  const second = await agent.next();
  t.equal(second.readBigUInt64BE(16), 6n, 'the next ack answers the next fresh ping');
  t.match(
    hub.counts,
    { received: 2, rejected: 7, sent: 2, longSilences: 0 },
    'seven dropped, no ack for any of them',
  );
  t.equal(agent.got.length, 0);
});

t.test('the longest silence a peer ended is kept, and one over half the bound is counted', async (t) => {
  const { hub, rec, grant, key, agent } = await forgedSession({ intervalMs: 100, deadAfterMs: 400 });
  const ping = async (counter: bigint) => {
    agent.sock.send(datagram({ kind: 1, id: grant.id, counter, key }), hub.port, '127.0.0.1');
    await agent.next();
  };
  await ping(1n);
  await ping(2n);
  t.equal(hub.counts.longSilences, 0, 'a ping right after the last is no long silence');
  // A silence of 250 ms, over half the 400 ms bound, then a ping that counts.
  await new Promise((r) => setTimeout(r, 250));
  await ping(3n);
  const c = hub.counts;
  t.ok(
    c.longestSilenceMs >= 245 && c.longestSilenceMs < 400,
    `longest silence ${c.longestSilenceMs.toFixed(1)} ms`,
  );
  t.equal(c.longSilences, 1);
  t.notOk(rec.isLost);
  const registry = createRegistry();
  new TunnelMetrics(registry, 'server').liveness = () => hub.counts;
  const text = await registry.metrics();
  t.match(text, /vipmesh_tunnel_liveness_longest_silence_seconds\{role="server"\} 0\.2[4-9]/);
  t.match(text, /vipmesh_tunnel_liveness_long_silences_total\{role="server"\} 1/);
});

t.test('an armed session is lost once its pings stop; one never armed is never lost', async (t) => {
  const hub = await serverHub();
  const silent = recorder();
  hub.expect({ intervalMs: 20, deadAfterMs: 60 }, silent.peer);
  const rec = recorder();
  const { grant } = hub.expect({ intervalMs: 20, deadAfterMs: 60 }, rec.peer);
  const agent = await udpPeer();
  const key = Buffer.from(grant.key, 'base64');
  agent.sock.send(datagram({ kind: 1, id: grant.id, counter: 1n, key }), hub.port, '127.0.0.1');
  await rec.armed;
  const silentMs = await rec.lost;
  t.ok(silentMs >= 60, `lost after ${silentMs.toFixed(1)} ms of silence (bound 60 ms)`);
  t.notOk(silent.isLost, 'a session whose datagrams never came stays with its tunnel heartbeats');
});

t.test('agent and server hubs: both arm; the agent loses a server that stops answering', async (t) => {
  const { server, link, atServer, atAgent } = await armedPair(
    { intervalMs: 10, deadAfterMs: 80 },
    '::ffff:127.0.0.1',
  );
  link.drop();
  const silentMs = await atAgent.lost;
  t.ok(silentMs >= 80, `the agent's judge: no ack for ${silentMs.toFixed(1)} ms`);
  t.ok(server.counts.rejected > 0, 'pings for a dropped session are counted as rejected');
  t.notOk(atServer.isLost, 'a dropped session is told nothing');
});

t.test('a port that cannot be bound is refused, naming the address', async (t) => {
  const taken = await udpPeer();
  const port = taken.sock.address().port;
  await t.rejects(LivenessHub.listen('127.0.0.1', port), {
    code: 'VIPMESH_TUNNEL_LIVENESS',
    message: new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}/udp`),
  });
});

t.test(
  'a grant that skipped grantOf is refused at once; the hub goes on serving its other sessions',
  async (t) => {
    const server = await serverHub();
    const agent = LivenessHub.start();
    t.teardown(() => agent.close());
    t.throws(
      () =>
        agent.call(
          '127.0.0.1',
          { port: server.port, id: '00', key: '', intervalMs: 20, deadAfterMs: 60 },
          recorder().peer,
        ),
      /the id is 8 bytes and the key 32/,
    );
    t.throws(
      () =>
        agent.call(
          'not-an-ip',
          server.expect({ intervalMs: 20, deadAfterMs: 60 }, recorder().peer).grant,
          recorder().peer,
        ),
      /not an IP address: not-an-ip/,
    );
    const atAgent = recorder();
    agent.call(
      '127.0.0.1',
      server.expect({ intervalMs: 20, deadAfterMs: 60_000 }, recorder().peer).grant,
      atAgent.peer,
    );
    await atAgent.armed;
    t.notOk(agent.failed, 'the hub still runs');
  },
);

t.test(
  'a blocked event loop does not stop the datagrams: no side is lost while JavaScript cannot run',
  async (t) => {
    const { server, atServer, atAgent } = await armedPair({ intervalMs: 20, deadAfterMs: 100 });
    const before = server.counts.received;
    // Five times the dead bound with this thread (and so every JavaScript callback of both hubs) stopped.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    const during = server.counts.received - before;
    t.ok(during >= 15, `pings kept arriving while the loop was blocked (${during} in 500 ms at 20 ms)`);
    // Whatever the threads decided meanwhile is delivered on the next turns of the loop.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 0));
    t.notOk(atServer.isLost, 'the server did not lose the agent');
    t.notOk(atAgent.isLost, 'the agent did not lose the server');
  },
);

/**
 * Three times: stop the server's thread for `serverMs` and the agent's for `agentMs` at once, wait that long
 * in real time, then until four more pings have counted (a verdict, if any, is made by then).
 */
async function stallBoth(server: LivenessHub, agent: LivenessHub, serverMs: number, agentMs: number) {
  for (let round = 0; round < 3; round++) {
    const before = server.counts.received;
    server.stallForTests(serverMs);
    agent.stallForTests(agentMs);
    await new Promise((r) => setTimeout(r, Math.max(serverMs, agentMs)));
    while (server.counts.received < before + 4) await new Promise((r) => setTimeout(r, 10));
  }
}

t.test(
  'a stall of the whole host is not taken for a dead peer; a real silence after it still is',
  async (t) => {
    // The hubs' threads do not keep the process alive; this does, and bounds the test.
    const guard = setTimeout(() => t.fail('no verdict within 30 s'), 30_000);
    t.teardown(() => clearTimeout(guard));
    const { server, agent, atServer, atAgent } = await armedPair({ intervalMs: 50, deadAfterMs: 150 });
    // Neither thread runs for 400 ms, almost three times the bound, and the agent's 30 ms longer (its pings
    // held up on the way after the host resumes): the server's thread wakes with its deadline long past and
    // nothing read, and must give the agent time to be heard from instead of judging on the spot.
    await stallBoth(server, agent, 400, 430);
    t.notOk(atServer.isLost, 'the server did not lose the agent');
    t.notOk(atAgent.isLost, 'the agent did not lose the server');
    // Each thread tells the stall was its own: time between waking and waiting again, not a late wake-up.
    t.ok(server.counts.busyMs >= 399, `the server's thread was busy ${server.counts.busyMs.toFixed(1)} ms`);
    t.ok(agent.counts.busyMs >= 429, `the agent's thread was busy ${agent.counts.busyMs.toFixed(1)} ms`);
    t.ok(
      server.counts.lateWakeMs < 399,
      `the server's thread woke at most ${server.counts.lateWakeMs.toFixed(1)} ms late`,
    );
    const registry = createRegistry();
    new TunnelMetrics(registry, 'server').liveness = () => server.counts;
    const text = await registry.metrics();
    t.match(text, /vipmesh_tunnel_liveness_thread_busy_seconds\{role="server"\} 0\.(399|4)/);
    t.match(text, /vipmesh_tunnel_liveness_thread_late_wake_seconds\{role="server"\} \d/);
    t.match(text, /vipmesh_tunnel_liveness_thread_major_faults_total\{role="server"\} \d+\n/);
    await agent.close();
    t.ok((await atServer.lost) >= 150, 'an agent that goes silent after the stall is still lost');
  },
);

t.test("a stall of the whole host shorter than the bound is not counted as the peer's silence", async (t) => {
  const guard = setTimeout(() => t.fail('no end within 30 s'), 30_000);
  t.teardown(() => clearTimeout(guard));
  const { server, agent, atServer, atAgent } = await armedPair({ intervalMs: 50, deadAfterMs: 150 });
  // Both threads stop for 100 ms, the agent's 20 ms longer: no deadline of the server falls inside, so only
  // waking often enough tells its thread the time was its own. Counted, it would be 100-170 ms of silence.
  await stallBoth(server, agent, 100, 120);
  t.notOk(atServer.isLost, 'the server did not lose the agent');
  t.notOk(atAgent.isLost, 'the agent did not lose the server');
  t.ok(
    server.counts.longestSilenceMs < 100,
    `the server's longest silence ${server.counts.longestSilenceMs.toFixed(1)} ms leaves its own stall out`,
  );
  t.ok(
    agent.counts.longestSilenceMs < 100,
    `the agent's longest silence ${agent.counts.longestSilenceMs.toFixed(1)} ms leaves its own stall out`,
  );
});

t.test('a welcome grant is used only when every field is sound', async (t) => {
  const good: LivenessGrant = {
    port: 6443,
    id: '0011223344556677',
    key: Buffer.alloc(32, 1).toString('base64'),
    intervalMs: 50,
    deadAfterMs: 150,
  };
  t.same(grantOf({ heartbeatMs: 50, liveness: good }), good);
  t.equal(grantOf({ heartbeatMs: 50 }), undefined, 'an older server grants nothing');
  t.equal(grantOf(null), undefined);
  for (const bad of [
    { port: 0 },
    { port: 70000 },
    { port: '6443' },
    { id: '00112233445566' },
    { id: 'zz11223344556677' },
    { key: Buffer.alloc(16).toString('base64') },
    { key: 5 },
    { intervalMs: 1 },
    { intervalMs: 'x' },
    { deadAfterMs: 40 },
    { deadAfterMs: 1e9 },
  ]) {
    t.equal(grantOf({ liveness: { ...good, ...bad } }), undefined, JSON.stringify(bad));
  }
});

/** A pino logger whose lines land in `lines`. */
function captured() {
  const lines: string[] = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk, _e, cb) {
        lines.push(String(chunk));
        cb();
      },
    }),
  );
  return { lines, logger };
}

async function serverAndAgent(t: Test, o: { udpPort?: number; agentLiveness?: boolean } = {}) {
  const log = captured();
  const registry = createRegistry();
  const srv = await createTunnelServer({
    registry,
    dataDir: tempDir('vipmesh-live-'),
    port: 0,
    host: '127.0.0.1',
    liveness: false,
    logger: log.logger,
  });
  t.teardown(() => srv.close());
  await srv.tunnel.listenLiveness('127.0.0.1', o.udpPort ?? srv.port);
  const c = new TunnelClient({
    servers: [srv.url],
    token: srv.credentials.joinToken,
    caHash: srv.credentials.caHash,
    node: 'pi1',
    dataDir: tempDir('vipmesh-live-'),
    registry: createRegistry(),
    ...(o.agentLiveness === undefined ? {} : { liveness: o.agentLiveness }),
  });
  t.teardown(() => c.close());
  await c.connect();
  return { srv, c, log, registry };
}

t.test('a server and an agent arm each other through the welcome grant', async (t) => {
  const { srv, c, registry } = await serverAndAgent(t);
  const atServer = srv.tunnel.sessions.get('pi1')!;
  const atAgent = c.session!;
  await Promise.all([
    atServer.livenessArmed ? undefined : once(atServer, 'liveness'),
    atAgent.livenessArmed ? undefined : once(atAgent, 'liveness'),
  ]);
  t.ok(atServer.livenessArmed && atAgent.livenessArmed);
  t.match(await registry.metrics(), /vipmesh_tunnel_liveness_datagrams_total\{role="server"\} [1-9]/);
});

t.test('a UDP port that is taken leaves the sessions on their tunnel heartbeats, and says so', async (t) => {
  const taken = await udpPeer();
  const { srv, c, log } = await serverAndAgent(t, { udpPort: taken.sock.address().port });
  t.match(log.lines.join(''), /no liveness datagrams: node loss is judged by the tunnel heartbeats alone/);
  t.match(log.lines.join(''), /VIPMESH_TUNNEL_LIVENESS/);
  const atServer = srv.tunnel.sessions.get('pi1')!;
  t.notOk(atServer.livenessArmed, 'not armed at the server');
  t.notOk(c.session!.livenessArmed, 'nor at the agent (it was granted nothing)');
  t.equal(
    await srv.tunnel.request('pi1', 'nothing').catch((e: { code: string }) => e.code),
    'VIPMESH_TUNNEL_NO_HANDLER',
  );
});

t.test('an agent told not to sends nothing, and is judged by its tunnel heartbeats', async (t) => {
  const { srv, c } = await serverAndAgent(t, { agentLiveness: false });
  const atServer = srv.tunnel.sessions.get('pi1')!;
  await srv.tunnel.request('pi1', 'nothing').catch(() => {});
  t.notOk(atServer.livenessArmed);
  t.notOk(c.session!.livenessArmed);
  t.equal(c.metrics.liveness, undefined, 'no hub was started');
});
