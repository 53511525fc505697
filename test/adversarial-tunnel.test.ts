import { Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import t from 'tap';
import { WebSocket } from 'ws';
import { createRegistry } from '../src/metrics.js';
import { FakeClock } from '../src/testing/fake-clock.js';
import { tempDir } from '../src/testing/tmp.js';
import { createTunnelServer, type StandaloneOptions } from '../src/testing/tunnel-server.js';
import { until } from '../src/testing/until.js';
import { TunnelClient } from '../src/tunnel/client.js';
import {
  decodeFrame,
  encodeHello,
  encodeOpen,
  encodePing,
  encodePush,
  encodeRequest,
} from '../src/tunnel/codec.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** A pino logger whose lines are kept for the test to count. */
function capturedLogger() {
  const lines: string[] = [];
  let partial = '';
  const sink = new Writable({
    write(chunk, _e, cb) {
      const parts = (partial + String(chunk)).split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

async function server(o: Omit<StandaloneOptions, 'dataDir'> = {}) {
  const srv = await createTunnelServer({
    dataDir: tempDir('vipmesh-adv-'),
    port: 0,
    host: '127.0.0.1',
    ...o,
  });
  t.teardown(() => srv.close());
  return srv;
}

type Srv = Awaited<ReturnType<typeof server>>;

/** A well-behaved agent on `srv` that answers `ping`. */
async function goodAgent(srv: Srv): Promise<TunnelClient> {
  const good = new TunnelClient({
    servers: [srv.url],
    token: srv.credentials.joinToken,
    caHash: srv.credentials.caHash,
    node: 'good',
    dataDir: tempDir('vipmesh-adv-'),
    registry: createRegistry(),
  });
  good.onRequest('ping', () => 'pong');
  await good.connect();
  t.teardown(() => good.close());
  return good;
}

/** A raw websocket to `srv`, authenticated as `node` (with `token`), that says HELLO once open. */
async function raw(srv: Srv, node: string, token = srv.credentials.joinToken): Promise<WebSocket> {
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
  t.teardown(() => ws.terminate());
  await new Promise((r) => ws.once('open', r));
  ws.send(encodeHello({ node }));
  return ws;
}

const isClosed = (ws: WebSocket) => ws.readyState === ws.CLOSED;
const tick = () => new Promise((r) => setImmediate(r));

const bigMethod = 'x'.repeat(60_000); // echoed back whole in the "no handler" error, before
const stamp = Buffer.alloc(8);
interface HogCase {
  name: string;
  opts: Omit<StandaloneOptions, 'dataDir'>;
  capBytes: number;
  /** One burst of frames from the hog; returns how many it sent. */
  burst: (ws: WebSocket) => number;
  expected: RegExp;
}
const hogCases: HogCase[] = [
  {
    name: '60 KB method names, default heartbeats: the unanswered heartbeats cut it',
    opts: {},
    capBytes: 8 * 1024 * 1024,
    burst: (ws) => {
      for (let i = 0; i < 20; i++) ws.send(encodeRequest(i + 1, bigMethod, null));
      return 20;
    },
    expected: /no answer to a heartbeat/,
  },
  {
    // Heartbeats too slow to notice first: the send queue cap is what cuts it. PINGs are not rate limited
    // and each is answered, so they fill the queue of a peer that does not read.
    name: 'a PING flood, slow heartbeats: the send queue cap cuts it',
    opts: { heartbeatMs: 60_000 },
    capBytes: 1024 * 1024,
    burst: (ws) => {
      for (let i = 0; i < 10_000; i++) ws.send(encodePing(false, stamp));
      return 10_000;
    },
    expected: /send queue over 1048576 bytes/,
  },
];
for (const { name, opts, capBytes, burst, expected } of hogCases)
  t.test(`a client that never reads is cut (${name}); memory stays bounded`, async (t) => {
    const srv = await server({ maxSendQueueBytes: capBytes, ...opts });
    await goodAgent(srv);
    let reason: string | undefined;
    srv.tunnel.on('node-lost', (e) => {
      if (e.node === 'hog') reason = e.reason;
    });
    const ws = await raw(srv, 'hog');
    await until('the hog to have a session', () => srv.tunnel.sessions.has('hog'));
    ws.pause(); // read nothing from now on
    gc();
    const before = process.memoryUsage();
    let sent = 0;
    // Bursts at a pace under the request rate limit; at most ~10 s of it (a server that never cuts fails).
    for (let round = 0; round < 400 && reason === undefined && ws.readyState === ws.OPEN; round++) {
      sent += burst(ws);
      await new Promise((r) => setTimeout(r, 25));
    }
    await until('the server to cut the hog (or the hog to stop)', () => reason !== undefined, {
      timeoutMs: 5000,
    }).catch(() => {});
    const why = reason ?? 'never cut';
    t.match(why, expected, `the server cut the hog: ${why}`);
    t.comment(`the hog sent ${sent} frames before it was cut`);
    await until('the hog session to be gone', () => !srv.tunnel.sessions.has('hog'));
    t.equal(srv.tunnel.metrics.sessions, 1, 'only the good session is left');
    t.ok(srv.tunnel.sessions.has('good'), 'the good agent stayed connected');
    t.equal(await srv.tunnel.request('good', 'ping'), 'pong', 'and answers');
    t.ok(
      srv.tunnel.metrics.sendQueuePeakBytes <= capBytes,
      `send queue peaked at ${srv.tunnel.metrics.sendQueuePeakBytes} bytes (cap ${capBytes})`,
    );
    const cuts = srv.tunnel.metrics.cuts;
    t.equal(cuts['send-queue'] + cuts.unresponsive, 1, 'one cut counted, for not reading');
    ws.terminate();
    gc();
    const after = process.memoryUsage();
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    t.comment(
      `heapUsed ${mib(before.heapUsed)} -> ${mib(after.heapUsed)} MiB, rss ${mib(before.rss)} -> ${mib(after.rss)} MiB`,
    );
  });

t.test('a client that sends but never reads is lost by heartbeats, though it is not silent', async (t) => {
  const srv = await server({ heartbeatMs: 100, misses: 3 });
  await goodAgent(srv);
  const ws = await raw(srv, 'deaf');
  await until('the deaf client to have a session', () => srv.tunnel.sessions.has('deaf'));
  ws.pause();
  const lost = new Promise<string>((r) =>
    srv.tunnel.on('node-lost', (e) => {
      if (e.node === 'deaf') r(e.reason);
    }),
  );
  // Small frames every 20 ms: the server always hears from it, and never has much to send it.
  const timer = setInterval(() => {
    if (ws.readyState === ws.OPEN) ws.send(encodePush('noise', null));
  }, 20);
  t.teardown(() => clearInterval(timer));
  const why = await lost;
  clearInterval(timer);
  t.match(why, /no answer to a heartbeat/, `lost: ${why}`);
  t.equal(srv.tunnel.metrics.cuts.unresponsive, 1);
  t.ok(srv.tunnel.sessions.has('good'), 'the good agent stayed connected');
});

t.test('an OPEN flood is cut by the rate limit, in a bounded number of log lines', async (t) => {
  const clock = new FakeClock();
  const log = capturedLogger();
  const srv = await server({ clock, logger: log.logger, opensPerSecond: 100, openBurst: 500 });
  const ws = await raw(srv, 'flood');
  let errors = 0;
  ws.on('message', (data: Buffer) => {
    const f = decodeFrame(data);
    if (!('error' in f) && f.type === 'error') errors++;
    if (!('error' in f) && f.type === 'ping') ws.send(encodePing(true, f.stamp));
  });
  const closed = new Promise<{ code: number; reason: string }>((r) =>
    ws.once('close', (code, reason) => r({ code, reason: reason.toString() })),
  );
  await until('the flood session to be up', () => srv.tunnel.sessions.has('flood'));
  let sent = 0;
  while (!isClosed(ws) && ws.readyState === ws.OPEN && sent < 5000) {
    for (let i = 0; i < 100; i++) ws.send(encodeOpen(2 * ++sent + 1, 65536, 'tcp:127.0.0.1:1'));
    await tick();
  }
  const c = await closed;
  t.equal(c.code, 1008, 'closed as a policy violation');
  t.match(c.reason, /stream opens over 100\/s/, `the client is told why: ${c.reason}`);
  t.equal(srv.tunnel.metrics.cuts['rate-limit'], 1);
  t.equal(srv.tunnel.metrics.streamsRefused, 500, 'the burst was refused stream by stream');
  t.equal(errors, srv.tunnel.metrics.streamsRefused, 'the counter equals the refusals the client got');
  clock.advance(10_000);
  const refused = log.lines.filter((l) => l.includes('refused'));
  t.ok(refused.length <= 2, `${refused.length} log lines about refused streams`);
  t.match(refused.at(-1) ?? '', /refused 499 more streams from node flood in the last 10 s/);
  t.ok(log.lines.length <= 6, `${log.lines.length} log lines in all`);
});

t.test('3,000 refused connects make at most a few summary lines', async (t) => {
  const clock = new FakeClock();
  const log = capturedLogger();
  const srv = await server({ clock, logger: log.logger });
  const wrong = `K10${srv.credentials.caHash}::server:${'0'.repeat(32)}`;
  const attempt = () =>
    new Promise<number>((resolve) => {
      const ws = new WebSocket(`${srv.url.replace('https', 'wss')}/v1/connect`, {
        ca: srv.credentials.caCertPem,
        checkServerIdentity: (() => undefined) as never,
        headers: {
          authorization: `Bearer ${wrong}`,
          'x-vipmesh-node': 'intruder',
          'x-vipmesh-node-password': 'password-of-intruder-0123456789',
        },
      });
      ws.on('error', () => {});
      ws.once('unexpected-response', (req, res) => {
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      ws.once('open', () => resolve(101));
      ws.once('close', () => resolve(-1));
    });
  const statuses = new Map<number, number>();
  for (let round = 0; round < 150; round++) {
    for (const s of await Promise.all(Array.from({ length: 20 }, attempt))) {
      statuses.set(s, (statuses.get(s) ?? 0) + 1);
    }
  }
  t.same([...statuses], [[401, 3000]], 'every attempt got 401');
  t.equal(srv.tunnel.metrics.authFailures, 3000, 'each one counted');
  clock.advance(10_000);
  const refused = log.lines.filter((l) => l.includes('refused'));
  t.ok(refused.length <= 2, `${refused.length} log lines for 3,000 refusals`);
  t.match(refused[0] ?? '', /invalid join token/, 'the first refusal says why, at once');
  t.match(
    refused.at(-1) ?? '',
    /refused 2999 more tunnel connections from remote 127\.0\.0\.1 in the last 10 s/,
  );
});
