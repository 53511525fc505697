/**
 * Integration on loopback with real TLS: a standalone TunnelServer and TunnelClients in this process,
 * real TCP targets behind the streams.
 */
import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import t from 'tap';
import { createRegistry } from '../metrics.js';
import { tempDir } from '../testing/tmp.js';
import {
  createTunnelServer,
  type StandaloneOptions,
  type StandaloneTunnelServer,
} from '../testing/tunnel-server.js';
import { until } from '../testing/until.js';
import { TunnelClient, type TunnelClientOptions } from './client.js';
import { type Connector, wsConnector } from './connector.js';
import type { TunnelStream } from './stream.js';

/** A temporary directory, removed when the test process exits. */
async function listen(handler: (s: Socket) => void): Promise<{ port: number; server: Server }> {
  const server = createServer({ allowHalfOpen: true }, handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as AddressInfo).port, server };
}

const echo = () =>
  listen((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });

async function server(o: Partial<StandaloneOptions> = {}): Promise<StandaloneTunnelServer> {
  const srv = await createTunnelServer({ dataDir: tempDir('vipmesh-lb-'), port: 0, host: '127.0.0.1', ...o });
  t.teardown(() => srv.close());
  return srv;
}

function agent(srv: StandaloneTunnelServer, o: Partial<TunnelClientOptions> = {}): TunnelClient {
  const c = new TunnelClient({
    servers: [srv.url],
    token: srv.credentials.joinToken,
    caHash: srv.credentials.caHash,
    node: 'pi1',
    dataDir: tempDir('vipmesh-lb-'),
    registry: createRegistry(),
    ...o,
  });
  t.teardown(() => c.close());
  return c;
}

async function roundTrip(s: TunnelStream, data: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.end(data);
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Capture a pino logger's output as text. */
function capturedLogger() {
  let text = '';
  const sink = new Writable({
    write(chunk, _e, cb) {
      text += chunk;
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), text: () => text };
}

t.test('echo through streams in both directions, requests both ways, pushes', async (t) => {
  const e = await echo();
  const registry = createRegistry();
  const srv = await server({ allow: [`127.0.0.1:${e.port}`], registry });
  const seen: unknown[] = [];
  srv.tunnel.on('node-seen', (ev) =>
    seen.push({ node: ev.node, ports: ev.registration.ports, re: ev.reconnect }),
  );
  srv.tunnel.onRequest('whoami', (_p, ctx) => ctx.node);
  const c = agent(srv, { ports: [e.port] });
  c.onRequest('double', (p) => (p as number) * 2);
  const pushed = new Promise((r) => c.once('push', (topic, payload) => r([topic, payload])));
  await c.connect();
  t.same(seen, [{ node: 'pi1', ports: [e.port], re: false }]);
  t.equal(await c.request('whoami'), 'pi1');
  t.equal(await srv.tunnel.request('pi1', 'double', 21), 42);
  t.ok(srv.tunnel.push('pi1', 'vips', ['198.51.100.7']));
  t.notOk(srv.tunnel.push('nobody', 'vips', []));
  t.same(await pushed, ['vips', ['198.51.100.7']]);
  // The whole Services of a busy holder are one push of several MiB: it arrives, the session stays.
  const big = Array.from({ length: 20_000 }, (_, i) => ({ name: `svc-${i}`, note: 'x'.repeat(200) }));
  const bigPushed = new Promise((r) => c.once('push', (topic, payload) => r([topic, payload])));
  t.ok(srv.tunnel.push('pi1', 'services', big));
  const [topic, got] = (await bigPushed) as [string, unknown[]];
  t.equal(topic, 'services');
  t.equal(
    got.length,
    big.length,
    `a ${(JSON.stringify(big).length / 2 ** 20).toFixed(1)} MiB push arrived whole`,
  );
  t.equal(await c.request('whoami'), 'pi1', 'the session carries on');
  const data = randomBytes(3 << 20);
  t.ok(
    (await roundTrip(srv.tunnel.dial('pi1', `127.0.0.1:${e.port}`), data)).equals(data),
    'server -> agent echo',
  );
  t.ok((await roundTrip(c.dial('tcp', `127.0.0.1:${e.port}`), data)).equals(data), 'agent -> server echo');
  const refused = srv.tunnel.dial('pi1', `127.0.0.1:${e.port + 1}`);
  t.match(await new Promise((r) => refused.once('error', r)), { code: 'VIPMESH_TUNNEL_DIAL_REFUSED' });
  t.throws(() => srv.tunnel.dial('nobody', '127.0.0.1:1'), { code: 'VIPMESH_TUNNEL_NO_SESSION' });
  t.equal(await c.request('whoami'), 'pi1', 'a refused dial leaves the session up');
  const text = await registry.metrics();
  t.match(text, /vipmesh_tunnel_sessions\{role="server"\} 1/);
  t.match(text, /vipmesh_tunnel_bytes_in_total\{role="server"\} [1-9]\d{6,}/, 'megabytes in');
  t.match(text, /vipmesh_tunnel_bytes_out_total\{role="server"\} [1-9]\d{6,}/, 'megabytes out');
  t.match(text, /vipmesh_tunnel_streams_open\{role="server"\} 0/, 'streams closed again');
  t.match(text, /vipmesh_tunnel_heartbeat_rtt_seconds_count\{role="server"\} [1-9]/);
  t.equal(c.metrics.sessions, 1, 'the agent counts its session');
});

t.test('1,000 concurrent streams', async (t) => {
  const e = await echo();
  const srv = await server();
  const c = agent(srv, { ports: [e.port] });
  await c.connect();
  const results = await Promise.all(
    Array.from({ length: 1000 }, async (_, i) => {
      const msg = Buffer.from(`stream ${i} `.repeat(20));
      return (await roundTrip(srv.tunnel.dial('pi1', `127.0.0.1:${e.port}`), msg)).equals(msg);
    }),
  );
  t.equal(results.filter(Boolean).length, 1000, 'every stream echoed its own bytes');
  // A stream is released once both FINs are through, which may be a frame after the last byte was read.
  await until(
    'every stream released on both sides',
    () => srv.tunnel.sessions.get('pi1')?.streamCount === 0 && c.session?.streamCount === 0,
  );
  t.equal(srv.tunnel.sessions.get('pi1')?.streamCount, 0, 'all released on the server');
  t.equal(c.session?.streamCount, 0, 'all released on the agent');
});

t.test('a slow reader does not slow the other streams', async (t) => {
  const big = randomBytes(4 << 20);
  // A source that pours data into every connection, and an echo for the measured streams.
  const source = await listen((s) => {
    s.on('error', () => {});
    s.end(big);
  });
  const e = await echo();
  const srv = await server({ windowBytes: 256 * 1024 });
  const c = agent(srv, { ports: [e.port, source.port] });
  await c.connect();
  const measure = async () => {
    const start = performance.now();
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        const got = await roundTrip(srv.tunnel.dial('pi1', `127.0.0.1:${e.port}`), big);
        if (!got.equals(big)) throw new Error('corrupted');
      }),
    );
    return (4 * big.length) / ((performance.now() - start) / 1000);
  };
  // Best of two runs each: the machine is shared and a single run can be off by 2x either way.
  const alone = Math.max(await measure(), await measure());
  const stalled = srv.tunnel.dial('pi1', `127.0.0.1:${source.port}`);
  await new Promise((r) => stalled.once('connect', r));
  stalled.pause();
  await until('the stalled stream to use up its window', () => stalled.peerCredit === 0);
  const withStall = Math.max(await measure(), await measure());
  t.comment(
    `4 echo streams: ${(alone / 2 ** 20).toFixed(1)} MiB/s alone, ${(withStall / 2 ** 20).toFixed(1)} MiB/s next to a stalled stream`,
  );
  t.ok(
    stalled.readableLength <= 256 * 1024,
    `the stalled stream holds ${stalled.readableLength} bytes (window 256 KiB)`,
  );
  // Generous: the machine is shared; a stall behind one write lock would make this ~0.
  t.ok(withStall > alone * 0.3, 'the others keep at least 30% of their throughput');
  stalled.resume();
  let n = 0;
  for await (const chunk of stalled) n += (chunk as Buffer).length;
  t.equal(n, big.length, 'the stalled stream delivers everything once read');
});

t.test('a wrong token gets 401, the agent stops, and no log line holds the secret', async (t) => {
  const srvLog = capturedLogger();
  const srv = await server({ logger: srvLog.logger });
  const agentLog = capturedLogger();
  const secret = 'deadbeefdeadbeefdeadbeefdeadbeef';
  const token = `K10${srv.credentials.caHash}::server:${secret}`;
  const c = agent(srv, { token, logger: agentLog.logger });
  await t.rejects(c.connect(), { code: 'VIPMESH_TUNNEL_UNAUTHORIZED' });
  const res = await fetch(`${srv.url}/v1/connect`, {}).catch((err: Error) => err);
  t.ok(res instanceof Error, 'plain HTTPS without the CA is refused by the client itself');
  t.match(srvLog.text(), /refused a tunnel connection: invalid join token/);
  t.match(srvLog.text(), /"status":401/);
  t.notMatch(srvLog.text(), secret, 'server log has no secret');
  t.notMatch(agentLog.text(), secret, 'agent log has no secret');
  t.equal(srv.tunnel.metrics.authFailures, 1);
  // The admin token is not a join token either.
  const admin = agent(srv, { token: srv.credentials.adminToken });
  await t.rejects(admin.connect(), { code: 'VIPMESH_TUNNEL_UNAUTHORIZED' });
});

t.test('a CA that does not match the token is refused', async (t) => {
  const srv = await server();
  const other = await server();
  // The other server's token: its hash pins the other server's CA.
  const c = agent(srv, { token: other.credentials.joinToken, caHash: other.credentials.caHash });
  await t.rejects(c.connect(), {
    code: 'VIPMESH_TUNNEL_CA_MISMATCH',
    message: 'CA hash does not match the token',
  });
});

t.test('a second node with the same name and another password is refused', async (t) => {
  const srv = await server();
  const first = agent(srv, { node: 'pi7' });
  await first.connect();
  const impostor = agent(srv, { node: 'pi7' }); // its own data dir: another password
  await t.rejects(impostor.connect(), { code: 'VIPMESH_TUNNEL_NODE_PASSWORD' });
  t.ok(srv.tunnel.sessions.has('pi7'), 'the first node keeps its session');
});

t.test('an agent reconnects after the server restarts; its session and registration come back', async (t) => {
  const dataDir = tempDir('vipmesh-lb-');
  const e = await echo();
  let srv = await createTunnelServer({ dataDir, port: 0, host: '127.0.0.1' });
  const port = srv.port;
  const c = agent(srv, { ports: [e.port], info: { arch: 'arm64' }, tcpTimeoutMs: 300 });
  c.onRequest('ping', () => 'pong');
  await c.connect();
  const lost = new Promise((r) => c.once('disconnected', r));
  await srv.close();
  await lost;
  const downAt = performance.now();
  srv = await createTunnelServer({ dataDir, port, host: '127.0.0.1' });
  t.teardown(() => srv.close());
  const seen = await new Promise<{ node: string; registration: unknown }>((r) =>
    srv.tunnel.once('node-seen', r),
  );
  t.comment(
    `reconnected ${Math.round(performance.now() - downAt)} ms after the new server started listening`,
  );
  t.same(seen.registration, { node: 'pi1', ports: [e.port], info: { arch: 'arm64' } });
  t.ok(srv.tunnel.sessions.has('pi1'));
  t.equal(await srv.tunnel.request('pi1', 'ping'), 'pong', 'handlers survive the reconnect');
  const msg = Buffer.from('after restart');
  t.ok((await roundTrip(srv.tunnel.dial('pi1', `127.0.0.1:${e.port}`), msg)).equals(msg));
  t.equal(c.metrics.reconnects, 1);
});

t.test('an agent whose server is away holds nothing: 300 refused attempts, memory comes back', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const srv = await createTunnelServer({ dataDir: tempDir('vipmesh-lb-'), port: 0, host: '127.0.0.1' });
  const inner = wsConnector();
  let attempts = 0;
  const connector: Connector = {
    fetchCA: (...a) => inner.fetchCA(...a),
    open: (...a) => {
      attempts++;
      return inner.open(...a);
    },
  };
  const c = agent(srv, { connector, backoffBaseMs: 2, backoffCapMs: 4 });
  const requests: Array<Promise<unknown>> = [];
  await c.connect();
  await srv.close(); // nothing listens on the port now: every attempt is refused at once
  const attemptsMore = async (n: number) => {
    const goal = attempts + n;
    await until(`${n} more connection attempts`, () => attempts >= goal, { timeoutMs: 60_000 });
  };
  await attemptsMore(50); // warm up
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 300; i++) requests.push(c.request('ping').catch((e: Error) => e));
  await attemptsMore(300);
  t.equal(c.session, undefined, 'no session while the server is away');
  const results = await Promise.all(requests);
  t.ok(
    results.every((r) => (r as { code?: string }).code === 'VIPMESH_TUNNEL_NO_SESSION'),
    'requests fail at once instead of queueing',
  );
  gc();
  const grew = (process.memoryUsage().heapUsed - before) / 2 ** 20;
  t.comment(`heap grew ${grew.toFixed(2)} MiB over 300 failed attempts`);
  t.ok(grew < 2, `the agent holds nothing per failed attempt (${grew.toFixed(2)} MiB)`);
});
