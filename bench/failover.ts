/**
 * Failover benchmark: the time a client is without service when the VIP holder's cable is
 * pulled, over TRIALS trials (default 20), for keepalived 2.2 (VRRPv3 advert_int 0.1; VRRPv2 defaults)
 * and vipmesh with its defaults (1 VIP; 100 VIPs all held by the dead node), in one run on one topology:
 * a bridge, two nodes, a client connecting every 5 ms. Also: server start to ready, server RSS with 1,000
 * Services, agent RSS with 256 VIPs. Needs root; measures the compiled CLI (runs `npm run build` first).
 * Last, a soak (bench/lib/soak.ts): false failovers while no node dies, both cores saturated by stress-ng
 * and the agents' heaps churned; 2 minutes by default, `--soak MINUTES` runs only it (the goal is 0 in 10).
 *   node --import tsx bench/failover.ts [--trials N] [--only keepalived|vipmesh|soak] [--soak MINUTES]
 *     [--churn MB/s]
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LabCluster } from '../src/lab/cluster.js';
import { measureCut, Prober, preciseNow, startNameServer, summarize } from '../src/lab/failover.js';
import { canUseNetns, Lab } from '../src/lab/index.js';
import { startKeepalived, type VrrpSettings } from './lib/keepalived.js';
import { reportSoak, soak } from './lib/soak.js';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '20' },
    only: { type: 'string' },
    soak: { type: 'string' },
    churn: { type: 'string', default: '32' },
  },
});
const TRIALS = Number(values.trials);
const VIP = '198.51.100.100';
const ROOT = join(import.meta.dirname, '..');

function report(label: string, outages: number[]): { median: number; p99: number } {
  const s = summarize(outages);
  console.log(
    `${label}: median ${s.median.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms, min ${s.min.toFixed(1)} ms, max ${s.max.toFixed(1)} ms (n=${s.n})`,
  );
  return s;
}

async function twoNodeLab(withServer: boolean): Promise<Lab> {
  const lab = await Lab.create();
  if (withServer) await lab.addNode('s1', { ipv4: '198.51.100.10/24' });
  await lab.addNode('n1', { ipv4: '198.51.100.11/24' });
  await lab.addNode('n2', { ipv4: '198.51.100.12/24' });
  await lab.addNode('c1', { ipv4: '198.51.100.50/24' });
  await startNameServer(lab, 'n1');
  await startNameServer(lab, 'n2');
  return lab;
}

/** Cut the holder TRIALS times; each trial's outage is the worst over the probed VIPs. */
async function cutTrials(lab: Lab, probers: Prober[], settleMs: number): Promise<number[]> {
  await Promise.all(probers.map((p) => p.stable(settleMs, 120_000)));
  const outages: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const first = probers[0]!;
    const last = await first.waitFor((l) => l.ok, 20_000, Math.max(0, first.lines.length - 1));
    const victim = last.from!;
    if (probers.length === 1) {
      const r = await measureCut(lab, first);
      outages.push(r.outageMs);
    } else {
      const marks = probers.map((p) => p.lines.length);
      const cutAt = preciseNow();
      await lab.cut(victim);
      const answers = await Promise.all(
        probers.map((p, j) => p.waitFor((l) => l.ok && l.t >= cutAt && l.from !== victim, 30_000, marks[j])),
      );
      outages.push(Math.max(...answers.map((a) => a.t - cutAt)));
    }
    await lab.restore(victim);
    await Promise.all(probers.map((p) => p.stable(settleMs, 120_000)));
  }
  for (const p of probers) p.stop();
  return outages;
}

async function keepalivedRun(label: string, s: VrrpSettings): Promise<{ median: number; p99: number }> {
  const lab = await twoNodeLab(false);
  try {
    startKeepalived(lab, ['n1', 'n2'], VIP, s);
    const outages = await cutTrials(lab, [new Prober(lab, 'c1', VIP)], Math.max(1500, s.advertInt * 4000));
    return report(label, outages);
  } finally {
    await lab.destroy();
  }
}

function servicesYaml(n: number, first: number, v6: boolean): string {
  const docs: string[] = [];
  for (let i = 0; i < n; i++) {
    const ip = v6 ? `2001:db8::${(0x1000 + first + i).toString(16)}` : `198.51.100.${first + i}`;
    docs.push(
      `apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-${first + i}\n  namespace: bench\nspec:\n  type: LoadBalancer\n  loadBalancerIP: ${ip}\n  ports:\n    - port: 8080\n      protocol: TCP\n`,
    );
  }
  return docs.join('---\n');
}

const POOLS = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench4, namespace: metallb-system}
spec: {addresses: [198.51.100.100-198.51.100.199]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench6, namespace: metallb-system}
spec: {addresses: ["2001:db8::1000/116"]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: bench, namespace: metallb-system}
spec: {ipAddressPools: [bench4, bench6]}
`;

async function vipmeshRun(vipCount: number): Promise<{ median: number; p99: number }> {
  const lab = await twoNodeLab(true);
  const cluster = new LabCluster(lab, 's1', '198.51.100.10');
  try {
    const readyMs = await cluster.startServer();
    if (vipCount === 1) console.log(`vipmesh server start to API ready: ${readyMs} ms`);
    // All VIPs start on n1 (n2 joins after they are placed; placement is sticky), so n1's death moves all.
    cluster.startAgent('n1', '198.51.100.11');
    await cluster.waitReady(['n1']);
    const file = join(cluster.dir, 'bench.yaml');
    writeFileSync(file, `${POOLS}---\n${servicesYaml(vipCount, 100, false)}`);
    await cluster.apply(file);
    const probed =
      vipCount === 1 ? [VIP] : Array.from({ length: 10 }, (_, i) => `198.51.100.${100 + i * 10}`);
    const probers = probed.map((vip) => new Prober(lab, 'c1', vip, 8080, vipCount === 1 ? 5 : 10));
    await Promise.all(probers.map((p) => p.stable(1000, 120_000)));
    cluster.startAgent('n2', '198.51.100.12');
    await cluster.waitReady(['n1', 'n2']);
    const outages = await cutTrials(lab, probers, 1500);
    const label =
      vipCount === 1
        ? 'vipmesh defaults, 1 VIP'
        : `vipmesh defaults, ${vipCount} VIPs on the dead node (worst of ${probed.length} probed VIPs)`;
    return report(label, outages);
  } finally {
    await lab.destroy();
    cluster.cleanup();
  }
}

async function footprint(): Promise<void> {
  const lab = await Lab.create();
  await lab.addNode('s1', { ipv4: '198.51.100.10/24' });
  await lab.addNode('n1', { ipv4: '198.51.100.11/24' });
  const cluster = new LabCluster(lab, 's1', '198.51.100.10');
  try {
    await cluster.startServer();
    cluster.startAgent('n1', '198.51.100.11');
    await cluster.waitReady(['n1']);
    const pools = join(cluster.dir, 'pools.yaml');
    writeFileSync(pools, POOLS);
    await cluster.apply(pools);
    const first = join(cluster.dir, 'svc256.yaml');
    writeFileSync(first, servicesYaml(256, 0, true));
    await cluster.apply(first);
    await cluster.until(
      '256 VIPs on n1',
      async () => {
        const out = await lab.exec('n1', ['ip', '-6', 'addr', 'show', 'dev', 'lo']);
        const n = (out.stdout.match(/2001:db8::1/g) ?? []).length;
        return n >= 256 ? true : undefined;
      },
      180_000,
    );
    console.log(
      `vipmesh agent RSS holding 256 VIPs: ${cluster.rssMiB('n1').toFixed(1)} MiB (peak ${cluster.peakRssMiB('n1').toFixed(1)} MiB; target 60)`,
    );
    const rest = join(cluster.dir, 'svc744.yaml');
    writeFileSync(rest, servicesYaml(744, 256, true));
    await cluster.apply(rest);
    await cluster.until(
      '1,000 Services with addresses',
      async () => {
        const r = await cluster.vipmesh(['get', 'services', '-n', 'bench', '-o', 'json']);
        if (r.code !== 0) return undefined;
        const items = (
          JSON.parse(r.stdout) as { items: Array<{ status?: { loadBalancer?: { ingress?: unknown[] } } }> }
        ).items;
        return items.filter((s) => (s.status?.loadBalancer?.ingress?.length ?? 0) > 0).length >= 1000
          ? true
          : undefined;
      },
      300_000,
    );
    console.log(
      `vipmesh server RSS with 1,000 Services: ${cluster.rssMiB('s1').toFixed(1)} MiB (peak ${cluster.peakRssMiB('s1').toFixed(1)} MiB; target 150)`,
    );
  } finally {
    await lab.destroy();
    cluster.cleanup();
  }
}

/** The soak: `--soak MINUTES` (or `--only soak`) runs only it; the default run soaks for 2 minutes. */
async function soakRun(minutes: number): Promise<void> {
  const vips = 20;
  const o = {
    minutes,
    churnMbPerSecond: Number(values.churn),
    pools: POOLS,
    services: servicesYaml(vips, 100, false),
    vips,
  };
  reportSoak(await soak(o), o);
}

async function main(): Promise<void> {
  if (!canUseNetns()) throw new Error('bench/failover.ts needs root and ip netns');
  if (values.only !== 'keepalived') {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' });
    process.env['VIPMESH_LAB_CLI'] = join(ROOT, 'dist', 'cli', 'main.js');
  }
  if (values.soak !== undefined || values.only === 'soak') {
    await soakRun(Number(values.soak ?? 2));
    return;
  }
  const r = new Map<string, { median: number; p99: number }>();
  if (values.only === undefined || values.only === 'keepalived') {
    r.set('kv3', await keepalivedRun('keepalived 2.2 VRRPv3 advert_int 0.1', { version: 3, advertInt: 0.1 }));
    r.set(
      'kv2',
      await keepalivedRun('keepalived 2.2 VRRPv2 defaults (advert_int 1)', { version: 2, advertInt: 1 }),
    );
  }
  if (values.only === undefined || values.only === 'vipmesh') {
    r.set('vm1', await vipmeshRun(1));
    r.set('vm100', await vipmeshRun(100));
    await footprint();
  }
  const ratio = (a: string, b: string, k: 'median' | 'p99') => {
    const x = r.get(a);
    const y = r.get(b);
    if (x && y) console.log(`ratio ${a}/${b} ${k}: ${(x[k] / y[k]).toFixed(2)}`);
  };
  for (const k of ['median', 'p99'] as const) {
    ratio('vm1', 'kv3', k);
    ratio('vm1', 'kv2', k);
    ratio('vm100', 'kv3', k);
  }
  console.log('targets: vipmesh median <= 200 ms, p99 <= 400 ms (1 and 100 VIPs)');
  if (values.only === undefined || values.only === 'vipmesh') await soakRun(2);
}

await main();
