/**
 * Exhausting the HTTPS port of the API and the tunnel, on loopback with a real `startServer()` (embedded
 * datastore): idle TCP sockets, TLS sockets that send nothing and slow bodies from several source addresses
 * (127.0.0.x, which Linux routes on lo). What an operator checks: the flood is refused at the per-source
 * cap and under pressure, counted in the metrics, `/healthz` and an authenticated `GET /api/v1/nodes`
 * answer while it is held, and idle connections are cut after the deadlines while watches and agent
 * tunnels stay up.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent as HttpsAgent, request } from 'node:https';
import { type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import t from 'tap';
import { Agent, type AgentAnnouncer, type AgentHostGw } from '../src/agent/index.js';
import { silentLogger } from '../src/log.js';
import type { ConnectionLimitOptions } from '../src/server/index.js';
import { type RunningServer, startServer } from '../src/server/index.js';
import { until } from '../src/testing/until.js';

const dir = mkdtempSync(join(tmpdir(), 'vipmesh-adv-api-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

async function server(name: string, limits: Partial<ConnectionLimitOptions>): Promise<RunningServer> {
  return startServer({
    dataDir: join(dir, name),
    nodeName: name,
    httpsListenPort: 0,
    bindAddress: '127.0.0.1',
    clusterCidr: ['198.18.0.0/16'],
    heartbeatMs: 50,
    nodeLostAfter: 3,
    nodeGraceMs: 1500,
    electionTtlSeconds: 2,
    logger: silentLogger(),
    connectionLimits: limits,
  });
}

/** A client socket and whether it has closed (the server cut it, or refused it). */
interface Held<S extends Socket> {
  sock: S;
  closed: boolean;
  /** Bytes the server sent. */
  got: string;
}

function track<S extends Socket>(sock: S): Held<S> {
  const h: Held<S> = { sock, closed: false, got: '' };
  sock.on('error', () => undefined);
  sock.on('data', (d: Buffer) => {
    h.got += d.toString('latin1');
  });
  sock.on('close', () => {
    h.closed = true;
  });
  return h;
}

/** A TCP connection from `localAddress` that never starts TLS. */
async function idleTcp(port: number, localAddress: string): Promise<Held<Socket>> {
  const sock = tcpConnect({ host: '127.0.0.1', port, localAddress });
  const h = track(sock);
  await new Promise<void>((resolve) => {
    sock.once('connect', () => resolve());
    sock.once('close', () => resolve());
  });
  return h;
}

/** A TLS connection from `localAddress` that finishes the handshake (or is refused) and sends nothing. */
async function idleTls(port: number, localAddress: string, ca: string): Promise<Held<TLSSocket>> {
  // tls.connect hands `localAddress` to the TCP connect; its type does not list it.
  const opts = { host: '127.0.0.1', port, localAddress, ca, servername: 'localhost' };
  const sock = tlsConnect(opts);
  const h = track(sock);
  await new Promise<void>((resolve) => {
    sock.once('secureConnect', () => resolve());
    sock.once('close', () => resolve());
  });
  return h;
}

/** GET `path` from `localAddress` on a fresh connection; the status. */
function get(
  srv: RunningServer,
  path: string,
  opts: { localAddress: string; token?: string; agent?: HttpsAgent },
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: srv.port,
        path,
        localAddress: opts.localAddress,
        ca: srv.credentials.caCertPem,
        servername: 'localhost',
        agent: opts.agent ?? false,
        headers: opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function metric(
  srv: RunningServer,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = srv.registry.getSingleMetric(name);
  if (m === undefined) return 0;
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((a, v) => a + v.value, 0);
}

const REFUSED = 'vipmesh_controlplane_api_connections_refused_total';
const CUT = 'vipmesh_controlplane_api_connections_cut_total';
const OPEN = 'vipmesh_controlplane_api_connections';
const long = { handshakeTimeoutMs: 60_000, headersTimeoutMs: 60_000, requestTimeoutMs: 120_000 };

t.test(
  'a flood of idle connections is capped per source and under pressure; the API still answers',
  async (t) => {
    const srv = await server('caps', {
      ...long,
      maxPerSource: 10,
      maxConnections: 60,
      highWater: 25,
      pressurePerSource: 3,
    });
    const held: Held<Socket>[] = [];
    t.teardown(async () => {
      for (const h of held) h.sock.destroy();
      await srv.close();
    });
    const ca = srv.credentials.caCertPem;
    // 15 idle TCP from each of two sources, then 15 TLS-handshaken silent ones from a third.
    for (const from of ['127.0.0.1', '127.0.0.2']) {
      for (let i = 0; i < 15; i++) held.push(await idleTcp(srv.port, from));
    }
    for (let i = 0; i < 15; i++) held.push(await idleTls(srv.port, '127.0.0.3', ca));
    await until('every flood connection accepted or refused', async () => {
      const open = await metric(srv, OPEN);
      return open + (await metric(srv, REFUSED)) === 45 && open;
    });
    // Two sources at their cap (10 each): 20 open; the third, once past the high-water mark (25), is
    // refused as soon as it holds 3 or more.
    t.equal(await metric(srv, OPEN), 25, 'connections held by the flood');
    t.equal(await metric(srv, REFUSED, { reason: 'per_source' }), 10, 'refused at the per-source cap');
    t.equal(await metric(srv, REFUSED, { reason: 'pressure' }), 10, 'refused under pressure');
    await until('the refused sockets closed on the client', () => held.filter((h) => h.closed).length === 20);
    t.equal(held.filter((h) => !h.closed).length, 25, 'the flood still holds its connections');

    // While the flood is held: a health check and the CLI from other addresses get answers.
    t.equal(await get(srv, '/healthz', { localAddress: '127.0.0.4' }), 200, '/healthz answers');
    const token = srv.credentials.adminToken;
    t.equal(await get(srv, '/api/v1/nodes', { localAddress: '127.0.0.5', token }), 200, 'GET /api/v1/nodes');

    // Connections that showed a valid token do not count against their source: 12 kept-alive API
    // connections from one address all get through, past the per-source cap of 10.
    const agents: HttpsAgent[] = [];
    t.teardown(() => {
      for (const a of agents) a.destroy();
    });
    for (let i = 0; i < 12; i++) {
      const agent = new HttpsAgent({ keepAlive: true });
      agents.push(agent);
      t.equal(await get(srv, '/api/v1/nodes', { localAddress: '127.0.0.6', token, agent }), 200);
    }
    t.equal(await metric(srv, OPEN), 37, 'the flood and the 12 authenticated connections are open');
    t.equal(await metric(srv, REFUSED), 20, 'nothing more was refused');
    t.equal(held.filter((h) => !h.closed).length, 25, 'the flood is still held (long deadlines here)');
  },
);

class NoAnnouncer extends EventEmitter implements AgentAnnouncer {
  async hold(): Promise<{ held: boolean }> {
    return { held: true };
  }
  async release(): Promise<boolean> {
    return true;
  }
  async probe(): Promise<{ answered: boolean }> {
    return { answered: false };
  }
  get vips(): string[] {
    return [];
  }
  async close(): Promise<void> {}
}

class NoHostGw implements AgentHostGw {
  constructor(readonly clusterCidr: string[]) {}
  async start(): Promise<void> {}
  async setLeases(): Promise<void> {}
  async close(): Promise<void> {}
}

t.test(
  'idle, silent and slow connections are cut after the deadlines; watches and tunnels stay',
  async (t) => {
    const srv = await server('deadlines', {
      handshakeTimeoutMs: 300,
      headersTimeoutMs: 300,
      requestTimeoutMs: 600,
      keepAliveTimeoutMs: 300,
    });
    const ca = srv.credentials.caCertPem;
    const token = srv.credentials.adminToken;
    const agent = new Agent({
      servers: [srv.url],
      token: srv.credentials.joinToken,
      nodeName: 'n1',
      dataDir: join(dir, 'n1'),
      registration: { addresses: [{ type: 'InternalIP', address: '198.51.100.11' }] },
      announcer: new NoAnnouncer(),
      hostGw: (cidr) => new NoHostGw(cidr),
      heartbeatMs: 50,
      misses: 3,
      logger: silentLogger(),
    });
    const held: Held<Socket>[] = [];
    t.teardown(async () => {
      for (const h of held) h.sock.destroy();
      await agent.close();
      await srv.close();
    });
    await agent.start();
    await until('the agent has a tunnel session', () => srv.tunnel.sessions.has('n1'));
    const session = srv.tunnel.sessions.get('n1');

    // A watch, open before the flood and idle through it.
    const watch = tlsConnect({ host: '127.0.0.1', port: srv.port, ca, servername: 'localhost' });
    const w = track(watch);
    held.push(w);
    watch.write(
      `GET /api/v1/namespaces/default/services?watch=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`,
    );
    await until('the watch answers 200', () => w.got.startsWith('HTTP/1.1 200'));

    const tcp = [await idleTcp(srv.port, '127.0.0.1'), await idleTcp(srv.port, '127.0.0.2')];
    const tls = [await idleTls(srv.port, '127.0.0.1', ca), await idleTls(srv.port, '127.0.0.3', ca)];
    // A slow body after its 401: headers and a few bytes of a 1 MB body, then nothing.
    const slow401 = await idleTls(srv.port, '127.0.0.2', ca);
    slow401.sock.write(
      'POST /api/v1/nodes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"a":',
    );
    // The same with a valid token: the request deadline ends it.
    const slowAuth = await idleTls(srv.port, '127.0.0.3', ca);
    slowAuth.sock.write(
      `POST /api/v1/nodes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Length: 1000000\r\n\r\n{"a":`,
    );
    // A kept-alive connection left idle after its answer.
    const keepAlive = await idleTls(srv.port, '127.0.0.4', ca);
    keepAlive.sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const all = { tcp, tls, slow401: [slow401], slowAuth: [slowAuth], keepAlive: [keepAlive] };
    for (const hs of Object.values(all)) held.push(...hs);

    for (const [what, hs] of Object.entries(all)) {
      await until(`the server closes the ${what} connections`, () => hs.every((h) => h.closed));
    }
    t.match(slow401.got, /^HTTP\/1\.1 401/, 'the slow body got its 401 first');
    t.match(slowAuth.got, /^HTTP\/1\.1 408/, 'the authenticated slow body got a 408');
    t.match(keepAlive.got, /^HTTP\/1\.1 200/, 'the kept-alive connection got its answer first');
    t.ok((await metric(srv, CUT, { reason: 'handshake' })) >= 2, 'TLS handshake deadline counted');
    // The silent TLS connections are cut by whichever comes first of the first-request guard and Node's
    // own header deadline; the two slow bodies by the request deadline.
    const silent =
      (await metric(srv, CUT, { reason: 'idle_after_tls' })) +
      (await metric(srv, CUT, { reason: 'request_timeout' }));
    t.ok(silent >= 4, `silent TLS connections and slow bodies counted (${silent})`);

    // Long-lived by design: the watch still streams and the agent's tunnel is the same session.
    t.notOk(w.closed, 'the watch is still open');
    const before = w.got.length;
    await srv.store.create('services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'default' },
      spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }] },
    });
    await until('the watch streams the new Service', () => w.got.slice(before).includes('"web"'));
    t.equal(srv.tunnel.sessions.get('n1'), session, 'the agent kept its tunnel session');
  },
);
