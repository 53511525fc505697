/**
 * Where a failover's time goes: a server and two agents in a lab, N VIPs on the first agent, a client
 * connecting to the last VIP every 5 ms; the holder's cable is pulled 4 times and each cut prints the
 * daemons' log lines after it with their time from the moment before the cut (each kind of per-VIP line
 * once, and the last `holding VIP`), and the client's outage. Lines are stamped when logged: the
 * `holding VIP` lines come on the turn after their frames went out. Needs root; measures dist/ (run
 * `npm run build` first).
 *   node --import tsx bench/failover-trace.ts [VIPS=100] [HEARTBEAT=50ms]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { LabCluster } from '../src/lab/cluster.js';
import { measureCut, Prober, startNameServer } from '../src/lab/failover.js';
import { Lab } from '../src/lab/index.js';

const N = Number(process.argv[2] ?? 100);
const HB = process.argv[3] ?? '50ms';
const ARGS = ['--heartbeat-interval', HB];
process.env['VIPMESH_LAB_CLI'] = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const lab = await Lab.create();
await lab.addNode('s1', { ipv4: '198.51.100.10/24' });
await lab.addNode('n1', { ipv4: '198.51.100.11/24' });
await lab.addNode('n2', { ipv4: '198.51.100.12/24' });
await lab.addNode('c1', { ipv4: '198.51.100.50/24' });
await startNameServer(lab, 'n1');
await startNameServer(lab, 'n2');
const cluster = new LabCluster(lab, 's1', '198.51.100.10', 'info');
const lines: Array<{ node: string; t: number; msg: string; o: Record<string, unknown> }> = [];
function tap(node: string) {
  const d = cluster.daemons.get(node)!;
  for (const stream of [d.child.stdout, d.child.stderr]) {
    if (stream === null) continue;
    createInterface({ input: stream }).on('line', (l) => {
      try {
        const o = JSON.parse(l) as Record<string, unknown>;
        lines.push({ node, t: Number(o['time']), msg: String(o['msg']), o });
      } catch {
        // not a JSON log line
      }
    });
  }
}

try {
  await cluster.startServer(ARGS);
  tap('s1');
  cluster.startAgent('n1', '198.51.100.11', ARGS);
  tap('n1');
  await cluster.waitReady(['n1']);
  const file = join(cluster.dir, 'bench.yaml');
  const docs: string[] = [
    `apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: bench4, namespace: metallb-system}\nspec: {addresses: [198.51.100.100-198.51.100.199]}\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: bench, namespace: metallb-system}\nspec: {ipAddressPools: [bench4]}\n`,
  ];
  for (let i = 0; i < N; i++)
    docs.push(
      `apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-${100 + i}\n  namespace: bench\nspec:\n  type: LoadBalancer\n  loadBalancerIP: 198.51.100.${100 + i}\n  ports:\n    - port: 80\n      targetPort: 8080\n      protocol: TCP\n`,
    );
  writeFileSync(file, docs.join('---\n'));
  await cluster.apply(file);
  // Port 80 reaches the name server's 8080 only through the holder's DNAT rules.
  const p = new Prober(lab, 'c1', `198.51.100.${100 + N - 1}`, 80, 5);
  await p.stable(1000, 120_000);
  cluster.startAgent('n2', '198.51.100.12', ARGS);
  tap('n2');
  await cluster.waitReady(['n1', 'n2']);
  for (let k = 0; k < 4; k++) {
    await p.stable(1500, 60_000);
    const mark = lines.length;
    const cut0 = Date.now();
    const r = await measureCut(lab, p);
    await new Promise((res) => setTimeout(res, 300));
    console.log(`cut ${k}: ${r.victim} -> ${r.newHolder}, outage ${r.outageMs.toFixed(1)} ms`);
    const seen = new Set<string>();
    for (const l of lines.slice(mark)) {
      const key = `${l.node} ${l.msg.replace(/[0-9.]+/g, '')}`;
      if (l.msg === 'holding VIP' || l.msg.includes('VIP') || l.msg.startsWith('announcing')) {
        if (!seen.has(key)) console.log(`  +${l.t - cut0} ${l.node} ${l.msg} (first)`);
        seen.add(key);
        continue;
      }
      const o =
        l.msg === 'assignment written' ? ` (plan ${l.o['planMs']} ms, write ${l.o['writeMs']} ms)` : '';
      console.log(`  +${l.t - cut0} ${l.node} ${l.msg}${o}`);
    }
    const last = lines
      .slice(mark)
      .filter((l) => l.msg === 'holding VIP')
      .at(-1);
    if (last) console.log(`  +${last.t - cut0} ${last.node} holding VIP (last)`);
    await lab.restore(r.victim);
    await cluster.waitReady(['n1', 'n2']);
  }
} finally {
  await lab.destroy();
  cluster.cleanup();
}
