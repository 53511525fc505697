/**
 * Planned hand-over on loopback, no root: a real `startServer()` and three real `Agent`s whose stand-in
 * announcers share one "LAN" (taking a VIP is heard by every other announcer holding it, as a gratuitous
 * ARP is). Closing a holder's agent (what SIGTERM does) moves its VIPs while it still answers for them:
 * at every moment someone holds each VIP, the node is NotReady with reason AgentStopping and nothing is
 * placed on it again.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Agent, type AgentAnnouncer } from '../src/agent/index.js';
import { ApiClient, type Node, type Service } from '../src/api/index.js';
import { silentLogger } from '../src/log.js';
import { startServer } from '../src/server/index.js';
import { until } from '../src/testing/until.js';

/** The shared segment: who holds what, and every hold and release in order. */
class Lan {
  readonly announcers = new Set<LanAnnouncer>();
  readonly log: Array<{ node: string; op: 'hold' | 'release'; vip: string }> = [];
  /** Releases that ended after their announcer closed (its netlink socket would be gone). */
  lateReleases = 0;
  /** False: gratuitous ARP is not heard (the new holder is on another segment). */
  hears = true;
  holders(vip: string): string[] {
    return [...this.announcers].filter((a) => a.held.has(vip)).map((a) => a.node);
  }
}

class LanAnnouncer extends EventEmitter implements AgentAnnouncer {
  readonly held = new Set<string>();
  constructor(
    readonly lan: Lan,
    readonly node: string,
    readonly mac: string,
  ) {
    super();
    lan.announcers.add(this);
  }
  async hold(vip: string): Promise<{ held: boolean }> {
    if (this.held.has(vip)) return { held: true };
    this.held.add(vip);
    this.lan.log.push({ node: this.node, op: 'hold', vip });
    // The gratuitous ARP: every other holder hears a claim from this MAC.
    if (this.lan.hears) {
      for (const a of this.lan.announcers) {
        if (a !== this && a.held.has(vip)) a.emit('conflict', { vip, mac: this.mac, phase: 'holding' });
      }
    }
    return { held: true };
  }
  async release(vip: string): Promise<boolean> {
    // Removing the address takes a moment (a netlink round trip); the announcer must still be open.
    await new Promise((r) => setTimeout(r, 5));
    if (this.closed) this.lan.lateReleases++;
    if (!this.held.delete(vip)) return false;
    this.lan.log.push({ node: this.node, op: 'release', vip });
    return true;
  }
  async probe(): Promise<{ answered: boolean }> {
    return { answered: false };
  }
  get vips(): string[] {
    return [...this.held];
  }
  closed = false;
  async close(): Promise<void> {
    for (const vip of [...this.held]) await this.release(vip);
    this.closed = true;
  }
}

const dir = mkdtempSync(join(tmpdir(), 'vipmesh-handover-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const srv = await startServer({
  dataDir: join(dir, 'srv'),
  nodeName: 'srv',
  httpsListenPort: 0,
  bindAddress: '127.0.0.1',
  clusterCidr: ['198.18.0.0/16'],
  heartbeatMs: 50,
  nodeLostAfter: 3,
  nodeGraceMs: 1500,
  adminConfigPath: join(dir, 'vipmesh.yaml'),
  electionTtlSeconds: 2,
  logger: silentLogger(),
});
const lan = new Lan();
const agents = new Map<string, Agent>();
function agent(name: string, i: number, handoverTimeoutMs = 5000): Agent {
  const mac = `02:00:00:00:00:0${i}`;
  const a = new Agent({
    servers: [srv.url],
    token: srv.credentials.joinToken,
    nodeName: name,
    dataDir: join(dir, name),
    registration: {
      addresses: [{ type: 'InternalIP', address: `198.51.100.1${i}` }],
      interfaces: [{ name: 'eth0', mac, addresses: [`198.51.100.1${i}/24`] }],
    },
    announcer: new LanAnnouncer(lan, name, mac),
    heartbeatMs: 50,
    misses: 3,
    handoverTimeoutMs,
    logger: silentLogger(),
  });
  agents.set(name, a);
  return a;
}
t.teardown(async () => {
  for (const a of agents.values()) await a.close().catch(() => undefined);
  await srv.close();
});
await Promise.all(['a1', 'a2', 'a3'].map((n, i) => agent(n, i + 1).start()));
const api = await ApiClient.connect({ server: srv.url, token: srv.credentials.adminToken });
t.teardown(() => api.close());

const nodeReady = async (name: string) =>
  ((await api.get('nodes', name)) as Node).status?.conditions?.find((c) => c.type === 'Ready');
const ingressOf = async (name: string) =>
  ((await api.get('services', name, 'default')) as Service).status?.loadBalancer?.ingress?.[0]?.ip;

async function service(name: string): Promise<string> {
  await api.create('services', {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: { type: 'LoadBalancer', ports: [{ port: 80 }] },
  });
  const vip = await until(`${name} has a VIP`, () => ingressOf(name));
  await until(`${vip} held`, () => lan.holders(vip).length === 1);
  return vip;
}

/** True when, replaying the log, `vip` never had zero holders between its first hold and `end`. */
function neverDark(vip: string, from: number): boolean {
  let count = lan.holders(vip).length;
  // Replay backwards from now: a release undone adds a holder, a hold undone removes one.
  for (let i = lan.log.length - 1; i >= from; i--) {
    const e = lan.log[i]!;
    if (e.vip !== vip) continue;
    count += e.op === 'release' ? 1 : -1;
    if (count === 0) return false;
  }
  return true;
}

await until('three Ready nodes', async () => {
  const items = (await api.list('nodes')).items as Node[];
  return items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
    .length === 3
    ? true
    : undefined;
});
await api.create('ipaddresspools', {
  apiVersion: 'metallb.io/v1beta1',
  kind: 'IPAddressPool',
  metadata: { name: 'lan', namespace: 'default' },
  spec: { addresses: ['198.51.100.200-198.51.100.239'] },
});
await api.create('l2advertisements', {
  apiVersion: 'metallb.io/v1beta1',
  kind: 'L2Advertisement',
  metadata: { name: 'lan', namespace: 'default' },
  spec: { ipAddressPools: ['lan'] },
});

t.test('closing a holder hands its VIPs over make-before-break and it is not placed on again', async (t) => {
  const vips: string[] = [];
  for (let i = 0; i < 6; i++) vips.push(await service(`web${i}`));
  const holder = lan.holders(vips[0]!)[0]!;
  const mine = vips.filter((v) => lan.holders(v)[0] === holder);
  const mark = lan.log.length;
  const started = Date.now();
  await agents.get(holder)!.close();
  const tookMs = Date.now() - started;
  for (const vip of mine) {
    const now = lan.holders(vip);
    t.equal(now.length, 1, `${vip} has one holder after the hand-over`);
    t.not(now[0], holder, `${vip} moved off ${holder}`);
    t.ok(neverDark(vip, mark), `${vip} always had a holder`);
    const took = lan.log.findIndex((e, i) => i >= mark && e.op === 'hold' && e.vip === vip);
    const let_ = lan.log.findIndex((e, i) => i >= mark && e.op === 'release' && e.vip === vip);
    t.ok(took >= 0 && let_ > took, `${vip}: the new holder took it before ${holder} let it go`);
  }
  t.ok(
    tookMs < 4000,
    `the hand-over ended on the new holders' announcements (${tookMs} ms), not the timeout`,
  );
  const ready = await nodeReady(holder);
  t.equal(ready?.status, 'False');
  t.equal(ready?.reason, 'AgentStopping');
  // A new Service is placed on the nodes left; the leaving node's session is gone, its Node stays NotReady.
  const next = await service('after');
  t.not(lan.holders(next)[0], holder);
  t.equal((await nodeReady(holder))?.reason, 'AgentStopping', 'the lost session did not change the reason');
  // Started again, the node is Ready and takes work as before.
  const i = Number(holder.slice(1));
  await agent(holder, i).start();
  await until(`${holder} Ready again`, async () =>
    (await nodeReady(holder))?.status === 'True' ? true : undefined,
  );
});

t.test('no announcement heard: the old holder lets go when the hand-over timeout ends', async (t) => {
  // a3 again, with a short timeout (it hands over what it holds first).
  await agents.get('a3')!.close();
  await agent('a3', 3, 300).start();
  await until('a3 Ready', async () => ((await nodeReady('a3'))?.status === 'True' ? true : undefined));
  let vip: string | undefined;
  for (let i = 0; vip === undefined && i < 20; i++) {
    const v = await service(`deaf${i}`);
    if (lan.holders(v)[0] === 'a3') vip = v;
  }
  if (vip === undefined) throw new Error('no Service was placed on a3');
  lan.hears = false;
  t.teardown(() => {
    lan.hears = true;
  });
  const started = Date.now();
  await agents.get('a3')!.close();
  const tookMs = Date.now() - started;
  t.notOk(lan.holders(vip).includes('a3'), 'a3 let it go');
  t.equal(lan.holders(vip).length, 1, 'the new holder has it');
  t.ok(tookMs >= 250 && tookMs < 3000, `a3 waited for its 300 ms timeout, no longer (${tookMs} ms)`);
});
