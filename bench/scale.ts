/**
 * Scale run, no root: tens of thousands of LoadBalancer Services in one pool on a two-server control plane.
 * In this one process: the datastore (vipmesh's embedded one, started on its own as an external datastore
 * is), servers s1 and s2 on it (real `startServer`: HTTPS API, tunnel, election, controllers), and two real
 * agents over TLS, n1 joined to s1 only and n2 to s2 only, whose announcers record what they are told to
 * hold instead of sending ARP (nothing leaves the process). Steps, each with its wall time, the CPU time
 * the process spent and the process's RSS (everything above shares it):
 *
 *   apply      create every Service through s1's API, 32 requests in flight
 *   allocated  every Service has its address, every VIP's assignment key names a Ready node, held by that
 *              node's agent, the master's controllers idle
 *   list       `vipmesh get services` (in-process, pages of 500) and one API list without limit
 *   restart    everything stops (servers, agents, datastore) and starts again on the same data: time to
 *              the API answering, then to settled (master elected, controllers idle, all VIPs held again)
 *   failover   s1 (the master) stops, then n1, as when their machine goes away: s2 is elected, marks n1
 *              NotReady once its grace (5 s) is over, moves n1's VIPs to n2; time from the stop to each
 *
 *   node --import tsx bench/scale.ts [count ...]      (default: 10000 50000)
 *
 * The pool is 198.18.0.0/15 (the benchmarking range).
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type AgentAnnouncer } from '../src/agent/index.js';
import { ApiClient, type KubeObject, type Service } from '../src/api/index.js';
import { run } from '../src/cli/program.js';
import { type Datastore, startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { type RunningServer, startServer } from '../src/server/index.js';
import { captureCli } from '../src/testing/cli.js';

const CONC = 32;
const counts = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => Number.isSafeInteger(n) && n > 0);

function svc(i: number): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `svc-${i}`, namespace: 'default', labels: { app: `app-${i % 10}` } },
    spec: {
      type: 'LoadBalancer',
      selector: { app: `app-${i % 10}` },
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    },
  };
}

/** An announcer that records the VIPs it is told to hold. */
class RecordingAnnouncer implements AgentAnnouncer {
  readonly held = new Set<string>();
  async hold(vip: string): Promise<{ held: boolean }> {
    this.held.add(vip);
    return { held: true };
  }
  async release(vip: string): Promise<boolean> {
    return this.held.delete(vip);
  }
  async probe(): Promise<{ answered: boolean }> {
    return { answered: false };
  }
  get vips(): string[] {
    return [...this.held];
  }
  on(): this {
    return this;
  }
  async close(): Promise<void> {
    this.held.clear();
  }
}

const mib = () => (process.memoryUsage().rss / 2 ** 20).toFixed(0);

/** Bytes of the files under `dir` (the datastore's database and WAL). */
function du(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? du(p) : e.isFile() ? statSync(p).size : 0;
  }
  return n;
}

async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const v = await fn();
  const c = process.cpuUsage(c0);
  const wall = (performance.now() - t0) / 1000;
  const cpu = (c.user + c.system) / 1e6;
  console.log(`  ${what}: ${wall.toFixed(1)} s (CPU ${cpu.toFixed(1)} s), RSS ${mib()} MiB`);
  return v;
}

async function inParallel(n: number, conc: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

const tick = () => new Promise((r) => setTimeout(r, 100));

/** Polls `fn` until it is true (a bench may wait on the wall clock; tests use until()). */
async function waitFor(fn: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await fn())) await tick();
}

function readyNodes(srv: RunningServer): string[] {
  return [...srv.informers.nodes.items.values()]
    .filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
    .map((n) => n.metadata.name);
}

async function scale(n: number): Promise<void> {
  console.log(`\n${n} Services, 2 servers, 2 agents, one process`);
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-bench-scale-'));
  const log = silentLogger();
  let ds: Datastore | undefined;
  let servers: RunningServer[] = [];
  let agents: Agent[] = [];
  // A restarted agent holds nothing until it is told again.
  const announcers = { n1: new RecordingAnnouncer(), n2: new RecordingAnnouncer() };
  const startDs = async () => {
    ds = await startDatastore({ dataDir: join(dir, 'etcd'), listenAddress: '127.0.0.1:0', logger: log });
  };
  const server = (name: string) =>
    startServer({
      dataDir: join(dir, name),
      nodeName: name,
      httpsListenPort: 0,
      bindAddress: '127.0.0.1',
      clusterCidr: ['198.51.100.0/24'],
      datastoreEndpoint: ds!.url,
      heartbeatMs: 1000,
      nodeLostAfter: 3,
      logger: log,
    });
  const agent = async (name: 'n1' | 'n2', srv: RunningServer) => {
    announcers[name] = new RecordingAnnouncer();
    const a = new Agent({
      servers: [srv.url],
      token: srv.credentials.joinToken,
      nodeName: name,
      dataDir: join(dir, name),
      registration: {
        addresses: [{ type: 'InternalIP', address: name === 'n1' ? '198.51.100.21' : '198.51.100.22' }],
      },
      announcer: announcers[name],
      heartbeatMs: 1000,
      logger: log,
    });
    await a.start();
    return a;
  };
  const master = () => servers.find((s) => s.controllers() !== undefined);
  /** Master idle, every Service allocated, every VIP on a Ready node and held by its agent only. */
  const settled = async (holders: Array<keyof typeof announcers>) => {
    for (;;) {
      const m = master();
      if (m !== undefined) {
        await m.controllers()!.idle();
        let done = 0;
        for (const s of m.informers.services.items.values())
          if ((s.status?.loadBalancer?.ingress?.length ?? 0) > 0) done++;
        const ready = new Set(readyNodes(m));
        let placed = 0;
        for (const node of ready) placed += m.holders.vipsOf(node).size;
        const held = holders.reduce((k, h) => k + announcers[h].held.size, 0);
        if (m.informers.services.items.size === n && done === n && placed === n && held === n) return;
      }
      await tick();
    }
  };
  const closeAll = async () => {
    for (const a of agents) await a.close();
    for (const s of servers) await s.close();
    await ds?.close();
    agents = [];
    servers = [];
    ds = undefined;
  };
  try {
    await timed('start: datastore, s1, s2, agents n1 (on s1) and n2 (on s2), nodes Ready', async () => {
      await startDs();
      servers = [await server('s1')];
      servers.push(await server('s2'));
      agents = [await agent('n1', servers[0]!), await agent('n2', servers[1]!)];
      await waitFor(() => master() !== undefined && readyNodes(master()!).length === 2);
    });
    const s1 = servers[0]!;
    const api = new ApiClient(s1.url, s1.credentials.adminToken, s1.credentials.caCertPem, 120_000);
    await api.create('ipaddresspools', {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'IPAddressPool',
      metadata: { name: 'bench', namespace: 'default' },
      spec: { addresses: ['198.18.0.0/15'] },
    } as KubeObject);
    await api.create('l2advertisements', {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'L2Advertisement',
      metadata: { name: 'bench', namespace: 'default' },
      spec: { ipAddressPools: ['bench'] },
    } as KubeObject);
    await timed(`apply: create ${n} through the API (${CONC} in flight)`, () =>
      inParallel(n, CONC, (i) => api.create('services', svc(i))),
    );
    await timed('allocated: every Service has an address, every VIP held, controllers idle', () =>
      settled(['n1', 'n2']),
    );
    console.log(`    VIPs held: n1 ${announcers.n1.held.size}, n2 ${announcers.n2.held.size}`);
    const dbMib = () => (du(join(dir, 'etcd')) / 2 ** 20).toFixed(0);
    console.log(`    datastore ${dbMib()} MiB`);
    await timed('list: vipmesh get services (pages of 500)', async () => {
      const cli = captureCli(silentLogger);
      const code = await run(
        ['get', 'services', '--server', s1.url, '--token', s1.credentials.adminToken],
        cli,
      );
      if (code !== 0) throw new Error(cli.err());
      console.log(`    ${cli.out().trim().split('\n').length - 1} rows`);
    });
    await timed('list: API list without limit (one answer)', async () => {
      const whole = await api.list('services');
      console.log(`    ${whole.items.length} listed, ${JSON.stringify(whole).length} bytes of JSON`);
    });
    api.close();

    await timed('restart: stop agents, servers, datastore', closeAll);
    await timed('restart: datastore, s1 and s2 started (the API answers)', async () => {
      await startDs();
      servers = [await server('s1')];
      servers.push(await server('s2'));
    });
    agents = [await agent('n1', servers[0]!), await agent('n2', servers[1]!)];
    await timed('restart: master elected, controllers idle, every VIP held again', () =>
      settled(['n1', 'n2']),
    );

    if (master() !== servers[0]) throw new Error('s1 is not the master after the restart');
    // s1 first: a server that stops leaves its nodes Ready, so n1 is not marked NotReady by s1 on its way
    // out (as an agent stopped on its own would be); then n1, as when one machine carrying both goes away.
    console.log(`    datastore before the failover ${dbMib()} MiB`);
    const moving = [...announcers.n1.held];
    const down = performance.now();
    const since = () => `${((performance.now() - down) / 1000).toFixed(1)} s after the stop`;
    const c0 = process.cpuUsage();
    await servers[0]!.close();
    await agents[0]!.close();
    announcers.n1 = new RecordingAnnouncer();
    agents = agents.slice(1);
    servers = servers.slice(1);
    const s2 = servers[0]!;
    await waitFor(() => s2.controllers() !== undefined);
    console.log(`  failover: s2 master, its controllers running: ${since()}, RSS ${mib()} MiB`);
    await waitFor(() => !readyNodes(s2).includes('n1'));
    console.log(`  failover: n1 NotReady (s2's grace is 5 s): ${since()}, RSS ${mib()} MiB`);
    const notReadyAt = performance.now();
    await waitFor(() => moving.every((v) => announcers.n2.held.has(v)));
    console.log(
      `  failover: all ${moving.length} VIPs of n1 held by n2: ${since()} (${((performance.now() - notReadyAt) / 1000).toFixed(1)} s after NotReady), RSS ${mib()} MiB`,
    );
    await settled(['n2']);
    const c = process.cpuUsage(c0);
    console.log(
      `  failover: every VIP on n2 and held by its agent, controllers idle: ${since()} (CPU ${((c.user + c.system) / 1e6).toFixed(1)} s), RSS ${mib()} MiB`,
    );
    console.log(`    datastore after the failover ${dbMib()} MiB`);
  } finally {
    await closeAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const n of counts.length > 0 ? counts : [10_000, 50_000]) await scale(n);
