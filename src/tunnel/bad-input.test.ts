import { connect as tlsConnect } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { WebSocket } from 'ws';
import { createRegistry } from '../metrics.js';
import { tempDir } from '../testing/tmp.js';
import { createTunnelServer, type StandaloneTunnelServer } from '../testing/tunnel-server.js';
import { until } from '../testing/until.js';
import { TunnelClient } from './client.js';
import { encodeHello } from './codec.js';

/** A temporary directory, removed when the test process exits. */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const srv: StandaloneTunnelServer = await createTunnelServer({
  dataDir: tempDir('vipmesh-bad-'),
  port: 0,
  host: '127.0.0.1',
  // Long enough for a TLS handshake plus a request on a loaded machine (the 1,000 attempts below), short
  // enough to wait for in a test.
  handshakeTimeoutMs: 1000,
  // Raw clients below never answer heartbeats: give them 1.5 s so the HELLO timeout (1 s) is what closes a
  // mute one.
  heartbeatMs: 500,
});
t.teardown(() => srv.close());
const good = new TunnelClient({
  servers: [srv.url],
  token: srv.credentials.joinToken,
  caHash: srv.credentials.caHash,
  node: 'good',
  dataDir: tempDir('vipmesh-bad-'),
  registry: createRegistry(),
});
good.onRequest('ping', () => 'pong');
await good.connect();
t.teardown(() => good.close());

/** A raw websocket, authenticated as node `node`. */
function raw(node: string, token = srv.credentials.joinToken): WebSocket {
  const ws = new WebSocket(`${srv.url.replace('https', 'wss')}/v1/connect`, {
    ca: srv.credentials.caCertPem,
    checkServerIdentity: (() => undefined) as never,
    headers: {
      authorization: `Bearer ${token}`,
      'x-vipmesh-node': node,
      'x-vipmesh-node-password': `password-of-${node}-0123456789`,
    },
  });
  ws.on('error', () => {});
  return ws;
}

const closed = (ws: WebSocket) =>
  new Promise<{ code: number; reason: string }>((r) =>
    ws.once('close', (code, reason) => r({ code, reason: reason.toString() })),
  );
const opened = (ws: WebSocket) => new Promise((r) => ws.once('open', r));

t.test(
  'malformed, oversized and text frames close that session with a reason; others carry on',
  async (t) => {
    const cases: Array<[string, (ws: WebSocket) => void, number, RegExp]> = [
      [
        'malformed frame',
        (ws) => ws.send(Buffer.from('01ff00000001', 'hex')),
        1002,
        /protocol error: unknown frame type/,
      ],
      ['short frame', (ws) => ws.send(Buffer.from('01', 'hex')), 1002, /protocol error: short frame/],
      ['oversized frame', (ws) => ws.send(Buffer.alloc(2 << 20)), 1009, /./],
      ['text message', (ws) => ws.send('hello'), 1003, /text message/],
    ];
    for (const [name, send, code, reason] of cases) {
      const ws = raw(`bad-${code}`);
      await opened(ws);
      ws.send(encodeHello({ node: `bad-${code}` }));
      const c = closed(ws);
      send(ws);
      const got = await c;
      t.equal(got.code, code, `${name}: close code ${got.code}`);
      if (code !== 1009) t.match(got.reason, reason, `${name}: ${got.reason}`);
      t.equal(await srv.tunnel.request('good', 'ping'), 'pong', `${name}: the good session still answers`);
    }
  },
);

t.test('a client that completes TLS and then sends nothing is cut after the handshake timeout', async (t) => {
  const start = performance.now();
  const sock = tlsConnect({ host: '127.0.0.1', port: srv.port, rejectUnauthorized: false });
  sock.on('error', () => {});
  await new Promise((r) => sock.once('secureConnect', r));
  await new Promise((r) => sock.once('close', r));
  const ms = performance.now() - start;
  t.ok(ms >= 950 && ms < 3000, `closed by the server after ${Math.round(ms)} ms (timeout 1 s)`);
  // Upgraded, but never says HELLO.
  const ws = raw('mute');
  await opened(ws);
  const c = await closed(ws);
  t.equal(c.code, 1008);
  t.match(c.reason, /no HELLO/);
  t.notOk(srv.tunnel.sessions.has('mute'));
});

t.test('other paths get 404; a missing node name or password gets 400', async (t) => {
  const ws = new WebSocket(`${srv.url.replace('https', 'wss')}/v1/other`, { ca: srv.credentials.caCertPem });
  const err = await new Promise<Error>((r) => ws.once('error', r));
  t.match(err.message, /404/);
  const res = await new Promise<number>((resolve) => {
    const anon = new WebSocket(`${srv.url.replace('https', 'wss')}/v1/connect`, {
      ca: srv.credentials.caCertPem,
      checkServerIdentity: (() => undefined) as never,
      headers: { authorization: `Bearer ${srv.credentials.joinToken}` },
    });
    anon.on('error', () => {});
    anon.once('unexpected-response', (req, r) => {
      resolve(r.statusCode ?? 0);
      req.destroy();
    });
  });
  t.equal(res, 400);
});

t.test(
  '1,000 failed connection attempts in a row: good sessions keep working, memory comes back',
  async (t) => {
    const wrong = `K10${srv.credentials.caHash}::server:${'0'.repeat(32)}`;
    const attempt = () =>
      new Promise<number>((resolve) => {
        const ws = raw('intruder', wrong);
        ws.once('unexpected-response', (req, res) => {
          resolve(res.statusCode ?? 0);
          req.destroy();
        });
        ws.once('open', () => resolve(101));
        ws.once('close', () => resolve(-1)); // cut before any answer: counted, so it shows
      });
    const openConnections = () =>
      new Promise<number>((resolve, reject) =>
        srv.https.getConnections((err, n) => (err ? reject(err) : resolve(n))),
      );
    const connectionsBefore = await openConnections();
    // Warm up so that lazily built things (TLS contexts, JIT) are not counted as growth.
    await Promise.all(Array.from({ length: 20 }, attempt));
    gc();
    const before = process.memoryUsage().heapUsed;
    const statuses = new Map<number, number>();
    for (let round = 0; round < 100; round++) {
      const batch = await Promise.all(Array.from({ length: 10 }, attempt));
      for (const s of batch) statuses.set(s, (statuses.get(s) ?? 0) + 1);
      if (round % 25 === 0)
        t.equal(await srv.tunnel.request('good', 'ping'), 'pong', `good session answers during the burst`);
    }
    t.same([...statuses], [[401, 1000]], 'every attempt got 401');
    t.equal(await srv.tunnel.request('good', 'ping'), 'pong');
    t.ok(srv.tunnel.sessions.has('good'), 'the good session was never dropped');
    await until(
      'the server to close the refused connections',
      async () => (await openConnections()) <= connectionsBefore,
    );
    gc();
    const after = process.memoryUsage().heapUsed;
    const grew = (after - before) / 2 ** 20;
    t.comment(`heap before ${(before / 2 ** 20).toFixed(1)} MiB, after ${(after / 2 ** 20).toFixed(1)} MiB`);
    t.ok(grew < 4, `heap grew ${grew.toFixed(2)} MiB over 1,000 refused attempts (< 4 MiB)`);
  },
);
