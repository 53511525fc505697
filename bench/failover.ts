/**
 * Failover benchmark (issue 7): the time a client is without service when the VIP holder's cable is
 * pulled, over TRIALS trials (default 20), for keepalived (VRRPv2 defaults; VRRPv3 advert_int 0.1) and
 * vipmesh with its defaults, in one run on one lab topology. Needs root.
 *   node --import tsx bench/failover.ts [--trials N] [--only keepalived|vipmesh]
 */
import { parseArgs } from 'node:util';
import { measureCut, Prober, startNameServer, summarize } from '../src/lab/failover.js';
import { canUseNetns, Lab } from '../src/lab/index.js';
import { startKeepalived, type VrrpSettings } from './lib/keepalived.js';

const { values } = parseArgs({
  options: { trials: { type: 'string', default: '20' }, only: { type: 'string' } },
});
const TRIALS = Number(values.trials);
const VIP = '198.51.100.100';

async function keepalivedRun(label: string, s: VrrpSettings): Promise<number[]> {
  const lab = await Lab.create();
  try {
    await lab.addNode('n1', { ipv4: '198.51.100.11/24' });
    await lab.addNode('n2', { ipv4: '198.51.100.12/24' });
    await lab.addNode('c1', { ipv4: '198.51.100.50/24' });
    await startNameServer(lab, 'n1');
    await startNameServer(lab, 'n2');
    startKeepalived(lab, ['n1', 'n2'], VIP, s);
    const prober = new Prober(lab, 'c1', VIP);
    const settle = Math.max(1500, s.advertInt * 4000);
    await prober.stable(settle, 60_000);
    const outages: number[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const r = await measureCut(lab, prober);
      outages.push(r.outageMs);
      await lab.restore(r.victim);
      await prober.stable(settle, 60_000);
    }
    prober.stop();
    report(label, outages);
    return outages;
  } finally {
    await lab.destroy();
  }
}

function report(label: string, outages: number[]): void {
  const s = summarize(outages);
  console.log(
    `${label}: median ${s.median.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms, min ${s.min.toFixed(1)} ms, max ${s.max.toFixed(1)} ms (n=${s.n})`,
  );
}

async function main(): Promise<void> {
  if (!canUseNetns()) throw new Error('bench/failover.ts needs root and ip netns');
  const results = new Map<string, number[]>();
  if (values.only === undefined || values.only === 'keepalived') {
    results.set(
      'keepalived-v3',
      await keepalivedRun('keepalived 2.2 VRRPv3 advert_int 0.1', { version: 3, advertInt: 0.1 }),
    );
    results.set(
      'keepalived-v2',
      await keepalivedRun('keepalived 2.2 VRRPv2 defaults (advert_int 1)', { version: 2, advertInt: 1 }),
    );
  }
  void results;
}

await main();
