/**
 * `npm run bench`: every benchmark in turn, each in its own process (each starts its peer in the same
 * run and prints figures and ratios). Needs root for the namespace benchmarks (arp, hostgw, tunnel,
 * failover, lb). `npm run bench -- ipam kine` runs only those; flags after a single name go to that
 * benchmark (`npm run bench -- failover --only footprint`).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const ALL = ['ipam', 'kine', 'snapshot', 'controlplane', 'hostgw', 'arp', 'tunnel', 'failover', 'ha', 'lb'];
const args = process.argv.slice(2);
const firstFlag = args.findIndex((a) => a.startsWith('-'));
const wanted = firstFlag < 0 ? args : args.slice(0, firstFlag);
const flags = firstFlag < 0 ? [] : args.slice(firstFlag);
if (flags.length > 0 && wanted.length !== 1) {
  console.error('flags go to one benchmark: name it alone before them');
  process.exit(2);
}
const names = wanted.length > 0 ? wanted : ALL;
let failed = 0;
for (const name of names) {
  if (!ALL.includes(name)) {
    console.error(`unknown benchmark ${name}; known: ${ALL.join(', ')}`);
    process.exit(2);
  }
  console.log(`\n=== bench/${name}.ts`);
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, `${name}.ts`), ...flags],
    {
      stdio: 'inherit',
    },
  );
  if (r.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
