/**
 * `npm run bench`: every benchmark in turn, each in its own process (each starts its peer in the same
 * run and prints figures and ratios). Needs root for the namespace benchmarks (arp, hostgw, tunnel,
 * failover, lb). `npm run bench -- ipam kine` runs only those; flags after a single name go to that
 * benchmark (`npm run bench -- failover --only footprint`). Ends with every goal the run measured, in one
 * table (bench/lib/goals.ts).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GOALS_ENV, goalsTable, readGoals } from './lib/goals.js';

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
const goalsDir = mkdtempSync(join(tmpdir(), 'vipmesh-bench-goals-'));
const goalsFile = join(goalsDir, 'goals.jsonl');
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
    { stdio: 'inherit', env: { ...process.env, [GOALS_ENV]: goalsFile } },
  );
  if (r.status !== 0) {
    failed++;
    console.log(`bench/${name}.ts failed (exit ${r.status ?? r.signal})`);
  }
}
console.log(`\n=== goals\n${goalsTable(readGoals(goalsFile))}`);
rmSync(goalsDir, { recursive: true, force: true });
process.exit(failed > 0 ? 1 : 0);
