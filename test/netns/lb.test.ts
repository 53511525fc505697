/**
 * Load balancing end to end: `vipmesh server`, two `vipmesh agent`s, a client and three backends in
 * network namespaces. A Service on port 80 goes to port 8080 on two LAN machines and on a pod behind a2
 * (reached over host-gw). The holder of the VIP serves the port in the kernel, health-checks the backends
 * and reports to the server, which writes the Service's condition and events; `Local` moves the VIP to a2
 * and the pod sees the client's address; cutting the holder's cable moves the VIP and new connections are
 * served.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { until } from './cluster-fixture.js';
import { type Cluster, NODES, SRV_URL, startCluster } from './cluster-suite.js';
import { canUseNetns } from './lab.js';

const skip = canUseNetns() ? false : 'needs root and the ip tool (network namespaces)';

const ROOT = join(import.meta.dirname, '..', '..');
const VIP = '198.51.100.200';
const LAN = { b1: { ipv4: '198.51.100.21' }, b2: { ipv4: '198.51.100.22' } };
/** The health check of the test Service: a dead backend is out after 2 × 500 ms. */
const INTERVAL_MS = 500;
const FALL = 2;

// biome-ignore lint/suspicious/noExplicitAny: JSON from the API
type Json = any;

function manifest(podIp: string, policy: 'Cluster' | 'Local'): string {
  return `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan }
spec: { addresses: [198.51.100.200-198.51.100.220] }
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: lan }
spec: { ipAddressPools: [lan] }
---
apiVersion: v1
kind: Service
metadata:
  name: web
  annotations:
    vipmesh.io/health-check: http
    vipmesh.io/health-check-interval: ${INTERVAL_MS}ms
    vipmesh.io/health-check-timeout: 300ms
    vipmesh.io/health-check-rise: "1"
    vipmesh.io/health-check-fall: "${FALL}"
spec:
  type: LoadBalancer
  loadBalancerIP: ${VIP}
  externalTrafficPolicy: ${policy}
  selector: { app: web }
  ports: [{ name: http, port: 80, protocol: TCP, targetPort: web }]
---
apiVersion: v1
kind: Endpoints
metadata: { name: web }
subsets:
  - addresses: [{ ip: ${LAN.b1.ipv4} }, { ip: ${LAN.b2.ipv4} }]
    ports: [{ name: web, port: 8080 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-pods, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
endpoints: [{ addresses: [${podIp}] }]
ports: [{ name: web, port: 8080 }]
`;
}

/** Start test/lb-fixtures/backend.ts in `node` (HTTP on 8080 answers `<name> <client address>`). */
async function backend(k: Cluster, node: string): Promise<ChildProcess> {
  const proc = k.c.lab.spawn(node, [
    process.execPath,
    '--import',
    'tsx',
    join(ROOT, 'test', 'lb-fixtures', 'backend.ts'),
    '--name',
    node,
    '--http',
    '8080',
  ]);
  let out = '';
  proc.stdout?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  await until(`backend ${node}`, async () => out.includes('ready'));
  return proc;
}

/** One request from the client: `[backend name, client address it saw]`, or undefined when it failed. */
async function request(k: Cluster): Promise<[string, string] | undefined> {
  const r = await k.c.lab.exec('client', ['curl', '-sS', '--max-time', '2', `http://${VIP}/`], 10_000);
  if (r.code !== 0) return undefined;
  const [name, from] = r.stdout.trim().split(' ');
  return name === undefined || from === undefined ? undefined : [name, from];
}

async function condition(k: Cluster): Promise<Json> {
  const s = await k.get('/api/v1/namespaces/default/services/web');
  return s.status?.conditions?.find((c: Json) => c.type === 'EndpointsHealthy');
}

t.test('load balancing across a cluster', { skip }, async (t) => {
  const k = await startCluster(t, { serverFlags: [], servers: [SRV_URL] }, LAN);
  const c = k.c;
  await k.startServer();
  await Promise.all([k.startAgent('a1'), k.startAgent('a2')]);
  const a2 = await until('a2 has a pod subnet', async () =>
    (await k.nodes()).find((n) => n.metadata.name === 'a2' && n.spec?.podCIDR !== undefined),
  );
  // The pod: a namespace cabled to a2 only, with an address of a2's pod subnet and no LAN address (its
  // bridge port stays down; an address there would send its answers to the LAN out of the dead cable).
  const subnet = (a2.spec.podCIDR as string).replace(/\.0\/24$/, '');
  const podIp = `${subnet}.2`;
  await c.lab.addNode('pod');
  await c.lab.cut('pod');
  await c.lab.run('a2', [
    'ip',
    'link',
    'add',
    'pod0',
    'type',
    'veth',
    'peer',
    'name',
    'eth1',
    'netns',
    c.lab.node('pod').ns,
  ]);
  await c.lab.run('a2', ['ip', 'addr', 'add', `${subnet}.1/24`, 'dev', 'pod0']);
  await c.lab.run('a2', ['ip', 'link', 'set', 'pod0', 'up']);
  await c.lab.run('pod', ['ip', 'addr', 'add', `${podIp}/24`, 'dev', 'eth1']);
  await c.lab.run('pod', ['ip', 'link', 'set', 'eth1', 'up']);
  await c.lab.run('pod', ['ip', 'route', 'add', 'default', 'via', `${subnet}.1`]);
  const backends = new Map<string, ChildProcess>();
  for (const b of ['b1', 'b2', 'pod']) backends.set(b, await backend(k, b));
  t.teardown(() => {
    for (const p of backends.values()) p.kill('SIGKILL');
  });
  const file = join(c.dir, 'web.yaml');
  writeFileSync(file, manifest(podIp, 'Cluster'));
  t.match(await k.cli(['apply', '-f', file]), /service\/web created/);

  let holder = '';
  await t.test('the client reaches all three backends through the VIP', async (t) => {
    holder = await until('web placed', async () => (await k.holders()).get(VIP));
    const seen = new Set<string>();
    await until(
      'all three backends answered',
      async () => {
        const r = await request(k);
        if (r !== undefined) seen.add(r[0]);
        return seen.size === 3;
      },
      30_000,
      50,
    );
    t.same([...seen].sort(), ['b1', 'b2', 'pod'], 'b1, b2 and the pod behind a2 all answered');
    // The condition follows the holder's health report, which may still count the endpoints it had
    // before the last one was added.
    const cond = await until('condition written for three endpoints', async () => {
      const c = await condition(k);
      return c?.message?.startsWith('3 of 3') ? c : undefined;
    });
    t.match(cond, {
      status: 'True',
      reason: 'AllEndpointsHealthy',
      message: `3 of 3 endpoints healthy, checked from ${holder}`,
    });
    const desc = await k.cli(['describe', 'service', 'web']);
    t.match(
      desc,
      new RegExp(`${podIp.replace(/\./g, '\\.')}:8080\\s+a2\\s+healthy`),
      'describe: the pod on a2, healthy',
    );
  });

  await t.test("the other node has web's rules, inert: its own requests go through the holder", async (t) => {
    const other = holder === 'a1' ? 'a2' : 'a1';
    const table = await c.lab.exec(other, ['nft', 'list', 'table', 'inet', 'vipmesh']);
    t.match(table.stdout, /dnat ip to .*198\.51\.100\.21/, `${other} has web's rules`);
    t.match(table.stdout, /fib daddr type local ip daddr \. meta l4proto \. th dport vmap @svc4/);
    // Live rules there would send its requests to a backend from its own address (Cluster masquerades):
    // through the holder, every backend sees the holder's address.
    for (let i = 0; i < 6; i++) {
      const r = await c.lab.exec(other, ['curl', '-sS', '--max-time', '2', `http://${VIP}/`], 10_000);
      t.equal(r.stdout.trim().split(' ')[1], NODES[holder as 'a1' | 'a2'].ipv4, `request ${i} from ${other}`);
    }
  });

  await t.test(
    'a killed backend stops getting requests within the fall time; no later request fails',
    async (t) => {
      const t0 = Date.now();
      backends.get('b2')!.kill('SIGKILL');
      backends.delete('b2');
      const cond = await until(
        'b2 unhealthy in the status',
        async () => {
          const c0 = await condition(k);
          return c0?.reason === 'SomeEndpointsUnhealthy' && /198\.51\.100\.22:8080/.test(c0.message)
            ? c0
            : undefined;
        },
        15_000,
        50,
      );
      const ms = Date.now() - t0;
      t.match(cond.message, /2 of 3 endpoints healthy.*unhealthy: 198\.51\.100\.22:8080/);
      // The status is written after the data plane changed; the write itself is bounded to once a second.
      t.ok(ms < FALL * INTERVAL_MS + 1500 + 1000, `b2 reported unhealthy after ${ms} ms`);
      const answers: string[] = [];
      for (let i = 0; i < 30; i++) {
        const r = await request(k);
        answers.push(r === undefined ? 'failed' : r[0]);
      }
      t.notOk(answers.includes('failed'), 'no request failed');
      t.notOk(answers.includes('b2'), 'none went to b2');
      // The events are written right after the status.
      const event = await until(
        'an EndpointUnhealthy event naming b2',
        async () =>
          ((await k.get('/api/v1/namespaces/default/events')).items as Json[]).find(
            (e) =>
              e.reason === 'EndpointUnhealthy' &&
              e.involvedObject?.name === 'web' &&
              /198\.51\.100\.22:8080/.test(e.message),
          ),
        5000,
      );
      t.equal(event.type, 'Warning', 'an EndpointUnhealthy warning names b2');
    },
  );

  await t.test(
    'Local: the VIP moves to the node with the healthy local endpoint, which sees the client',
    async (t) => {
      writeFileSync(file, manifest(podIp, 'Local'));
      await k.cli(['apply', '-f', file]);
      await until('web on a2', async () => (await k.holders()).get(VIP) === 'a2', 15_000);
      const r = await until(
        'answered on a2',
        async () => {
          const got = await request(k);
          return got?.[0] === 'pod' ? got : undefined;
        },
        15_000,
        50,
      );
      t.equal(r[1], NODES.client.ipv4, 'the pod sees the client address');
      for (let i = 0; i < 10; i++)
        t.same(await request(k), ['pod', NODES.client.ipv4], `request ${i}: the local pod`);
    },
  );

  await t.test('cut the holder: the VIP moves and new connections are served', async (t) => {
    writeFileSync(file, manifest(podIp, 'Cluster'));
    await k.cli(['apply', '-f', file]);
    const victim = (await k.holders()).get(VIP)!;
    const other = victim === 'a1' ? 'a2' : 'a1';
    await c.lab.cut(victim);
    await until(`web on ${other}`, async () => (await k.holders()).get(VIP) === other, 15_000);
    await until('served after the failover', async () => (await request(k)) !== undefined, 15_000, 50);
    // Backends the new holder cannot reach (the pod behind the cut node, and the dead b2) are out after
    // the fall time; from then on every new connection is served.
    await until('b1 alone healthy', async () => /^1 of 3/.test((await condition(k))?.message ?? ''), 15_000);
    for (let i = 0; i < 20; i++) t.same((await request(k))?.[0], 'b1', `request ${i} after the failover`);
    await c.lab.restore(victim);
  });
});
