/**
 * host-gw benchmark: program 1,000 node routes from scratch, then apply 100 lease changes, with vipmesh's
 * reconciler (netlink) and with `ip -batch` doing the same changes, in the same run, inside a namespace
 * this script creates and deletes (198.18.0.0/16 pod subnets as /27s, 198.51.100.x next hops).
 *
 *   node --import tsx bench/hostgw.ts            (root; prints one figure per line)
 *
 * Targets: 1,000 routes in at most 100 ms; 100 lease changes reconciled in at most 20 ms.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRouteNetlink, type Lease, RouteReconciler } from '../src/flannel-hostgw/index.js';

const ROUTES = 1_000;
const CHANGES = 100;
const ROUNDS = 7;
const VIPMESH_PROTO = 86;
const IP_PROTO = 'static';

/** Lease i: pod subnet 198.18.(i>>3).((i&7)*32)/27 via 198.51.100.(2 + i % 250). */
function lease(i: number, hopShift = 0): Lease {
  return {
    node: `node-${i}`,
    podCIDRs: [`198.18.${i >> 3}.${(i & 7) * 32}/27`],
    nodeIPs: [`198.51.100.${2 + ((i + hopShift) % 250)}`],
  };
}

/** The initial set and the changed set: 50 next hops move, 25 leases go, 25 new ones come (100 changes). */
function leaseSets(): { initial: Lease[]; changed: Lease[] } {
  const initial = Array.from({ length: ROUTES }, (_, i) => lease(i));
  const changed = initial.slice(CHANGES / 4); // the first 25 go
  for (let i = 0; i < CHANGES / 2; i++) changed[i] = lease(CHANGES / 4 + i, 7); // 50 move
  for (let i = 0; i < CHANGES / 4; i++) changed.push(lease(ROUTES + i)); // 25 new
  return { initial, changed };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ip = (args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const routeCount = (proto: string | number) =>
  ip(['route', 'show', 'proto', String(proto)])
    .split('\n')
    .filter(Boolean).length;

function batchFor(from: Lease[], to: Lease[]): string {
  const was = new Map(from.map((l) => [l.podCIDRs[0]!, l.nodeIPs[0]!]));
  const now = new Map(to.map((l) => [l.podCIDRs[0]!, l.nodeIPs[0]!]));
  const lines: string[] = [];
  for (const [dst, via] of now) {
    if (was.get(dst) !== via) lines.push(`route replace ${dst} via ${via} dev eth0 proto ${IP_PROTO}`);
  }
  for (const dst of was.keys()) if (!now.has(dst)) lines.push(`route del ${dst} proto ${IP_PROTO}`);
  return `${lines.join('\n')}\n`;
}

function timeBatch(text: string): number {
  const file = join(tmpdir(), `vipmesh-bench-${process.pid}.batch`);
  writeFileSync(file, text);
  const t0 = performance.now();
  const r = spawnSync('ip', ['-batch', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`ip -batch failed: ${r.stderr}`);
  return ms;
}

/** Runs inside the namespace. */
async function child(): Promise<void> {
  const { initial, changed } = leaseSets();
  const concurrency = Number(process.env['HOSTGW_BENCH_CONCURRENCY'] ?? 128);
  const vSerial: number[] = [];
  const vScratch: number[] = [];
  const vChange: number[] = [];
  const bScratch: number[] = [];
  const bChange: number[] = [];
  // Round 0 warms the JIT up (a daemon reconciles in a warm process) and is not counted.
  for (let round = -1; round < ROUNDS; round++) {
    // vipmesh: a fresh reconciler each round (start() reads the empty table), then the two lease sets.
    const rec = new RouteReconciler(createRouteNetlink(), { nodeName: 'bench', iface: 'eth0', concurrency });
    await rec.start();
    let t0 = performance.now();
    const a = await rec.setLeases(initial);
    const scratchMs = performance.now() - t0;
    t0 = performance.now();
    const b = await rec.setLeases(changed);
    const changeMs = performance.now() - t0;
    if (a.replaced !== ROUTES || b.replaced + b.deleted !== CHANGES || routeCount(VIPMESH_PROTO) !== ROUTES) {
      throw new Error(
        `vipmesh did not converge (round ${round}): ${JSON.stringify({ a, b, n: routeCount(VIPMESH_PROTO) })}`,
      );
    }
    await rec.close();
    ip(['route', 'flush', 'proto', String(VIPMESH_PROTO)]);
    // For reference: the same reconciler with one request in flight (how flannel programs routes).
    const serial = new RouteReconciler(createRouteNetlink(), {
      nodeName: 'bench',
      iface: 'eth0',
      concurrency: 1,
    });
    await serial.start();
    t0 = performance.now();
    await serial.setLeases(initial);
    const serialMs = performance.now() - t0;
    await serial.close();
    ip(['route', 'flush', 'proto', String(VIPMESH_PROTO)]);
    // ip -batch: the same changes.
    const batchScratchMs = timeBatch(batchFor([], initial));
    const batchChangeMs = timeBatch(batchFor(initial, changed));
    if (round >= 0) {
      vScratch.push(scratchMs);
      vSerial.push(serialMs);
      vChange.push(changeMs);
      bScratch.push(batchScratchMs);
      bChange.push(batchChangeMs);
    }
    if (routeCount(IP_PROTO) !== ROUTES) throw new Error('ip -batch did not converge');
    ip(['route', 'flush', 'proto', IP_PROTO]);
  }
  const out = (k: string, v: number) => process.stdout.write(`${k}: ${v.toFixed(2)}\n`);
  const best = (xs: number[]) => Math.min(...xs);
  process.stdout.write(`rounds (after one warm-up round): ${ROUNDS}\n`);
  if (process.env['HOSTGW_BENCH_VERBOSE'])
    process.stdout.write(`${JSON.stringify({ vScratch, vSerial, vChange, bScratch, bChange })}\n`);
  out(`vipmesh program ${ROUTES} routes from scratch, median (ms)`, median(vScratch));
  out(`vipmesh program ${ROUTES} routes from scratch, best (ms)`, best(vScratch));
  out(`ip -batch program ${ROUTES} routes from scratch, median (ms)`, median(bScratch));
  out(`ip -batch program ${ROUTES} routes from scratch, best (ms)`, best(bScratch));
  out('ratio from scratch, medians (vipmesh / ip -batch)', median(vScratch) / median(bScratch));
  out(`vipmesh with one request in flight, ${ROUTES} routes, median (ms)`, median(vSerial));
  out(`vipmesh reconcile after ${CHANGES} lease changes, median (ms)`, median(vChange));
  out(`vipmesh reconcile after ${CHANGES} lease changes, best (ms)`, best(vChange));
  out(`ip -batch the same ${CHANGES} route changes, median (ms)`, median(bChange));
  out(`ip -batch the same ${CHANGES} route changes, best (ms)`, best(bChange));
  out('ratio lease changes, medians (vipmesh / ip -batch)', median(vChange) / median(bChange));
}

function parent(): void {
  const ns = `vmbench-hostgw-${process.pid}-${randomBytes(2).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    const inNs = (args: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...args], { stdio: 'ignore' });
    inNs(['ip', 'link', 'set', 'lo', 'up']);
    inNs(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
    inNs(['ip', 'link', 'set', 'eth0', 'up']);
    inNs(['ip', 'link', 'set', 'peer0', 'up']);
    inNs(['ip', 'addr', 'add', '198.51.100.1/24', 'dev', 'eth0']);
    process.stdout.write(
      `host-gw bench: ${ROUTES} node routes from scratch, then ${CHANGES} lease changes, in namespace ${ns}\n`,
    );
    const r = spawnSync(
      'ip',
      ['netns', 'exec', ns, process.execPath, ...process.execArgv, process.argv[1]!, '--in-namespace'],
      { stdio: 'inherit' },
    );
    if (r.status !== 0) process.exitCode = 1;
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
}

if (process.argv.includes('--in-namespace')) await child();
else parent();
