/**
 * IPAM benchmark: allocate 10,000 Services over pools totalling 65,536 IPv4 addresses plus an
 * IPv6 /64, with vipmesh's allocator and with a peer in the same run.
 *
 * The peer is a first-fit linear scan, the way MetalLB's allocator finds a free address
 * (internal/allocator getIPFromCIDR walks each CIDR from its first address and checks every address
 * against its in-use maps). MetalLB is Go and needs a Kubernetes API, so the scan is re-implemented
 * here in TypeScript with the same data layout (string-keyed maps); it is that algorithm, not MetalLB.
 *
 * Each side runs in its own child process so its peak RSS is its own; a third child that only loads
 * the same runtime gives the baseline RSS. Run: node --import tsx bench/ipam.ts
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Allocator } from '../src/vip-pool/allocator.js';
import type { AddressPool, ProtocolPort, ServiceRequest } from '../src/vip-pool/types.js';

const N = 10_000;
const WINDOW = 200;

const POOLS: AddressPool[] = [
  { name: 'a', labels: {}, addresses: ['198.18.0.0/18'], autoAssign: true, avoidBuggyIPs: true },
  { name: 'b', labels: {}, addresses: ['198.18.64.0/18'], autoAssign: true, avoidBuggyIPs: false },
  {
    name: 'c',
    labels: {},
    addresses: ['198.18.128.0/18', '2001:db8::/64'],
    autoAssign: true,
    avoidBuggyIPs: false,
  },
  { name: 'd', labels: {}, addresses: ['198.18.192.0/18'], autoAssign: false, avoidBuggyIPs: false },
];

/** The workload: 10% pinned (pool d), 20% TCP/UDP sharing pairs, 10% IPv6, 10% dual stack, 50% plain IPv4. */
function services(): ServiceRequest[] {
  const out: ServiceRequest[] = [];
  const tcp80: ProtocolPort[] = [{ protocol: 'TCP', port: 80 }];
  for (let i = 0; i < N; i++) {
    const base: ServiceRequest = {
      namespace: 'bench',
      name: `s${i}`,
      labels: {},
      requestedIPs: [],
      ipFamilyPolicy: 'SingleStack',
      ipFamilies: [],
      ports: tcp80,
    };
    switch (i % 10) {
      case 0:
        base.requestedIPs = [`198.18.${192 + ((i >> 8) & 63)}.${i & 255}`];
        break;
      case 1:
        base.sharingKey = `k${i}`;
        base.ports = [{ protocol: 'TCP', port: 53 }];
        break;
      case 2:
        base.sharingKey = `k${i - 1}`;
        base.ports = [{ protocol: 'UDP', port: 53 }];
        break;
      case 3:
        base.ipFamilies = [6];
        break;
      case 4:
        base.ipFamilyPolicy = 'RequireDualStack';
        break;
    }
    out.push(base);
  }
  return out;
}

interface Result {
  totalMs: number;
  perAllocAt1k: number;
  perAllocAt10k: number;
  failures: number;
}

function measure(assign: (s: ServiceRequest) => void): Result {
  const list = services();
  let failures = 0;
  let at1k = 0;
  let at10k = 0;
  let windowStart = 0;
  const t0 = performance.now();
  for (let i = 0; i < list.length; i++) {
    if (i === 1000 - WINDOW || i === N - WINDOW) windowStart = performance.now();
    try {
      assign(list[i]!);
    } catch {
      failures++;
    }
    if (i === 999) at1k = (performance.now() - windowStart) / WINDOW;
    if (i === N - 1) at10k = (performance.now() - windowStart) / WINDOW;
  }
  return { totalMs: performance.now() - t0, perAllocAt1k: at1k, perAllocAt10k: at10k, failures };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

function runVipmesh(): Record<string, number> {
  const cold = measure(
    (
      (a) => (s) =>
        a.assign(s)
    )(new Allocator(POOLS)),
  );
  // The process's peak RSS right after the one 10,000-Service job (later runs only add garbage).
  const rssAfterCold = process.resourceUsage().maxRSS / 1024;
  const runs: Result[] = [];
  for (let r = 0; r < 5; r++)
    runs.push(
      measure(
        (
          (a) => (s) =>
            a.assign(s)
        )(new Allocator(POOLS)),
      ),
    );
  // Memory of a /24 and of a /64 with the same 250 allocations (heap after a full GC).
  const heapFor = (addresses: string[], v6: boolean): number => {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const before = process.memoryUsage().heapUsed;
    const a = new Allocator([{ name: 'p', labels: {}, addresses, autoAssign: true, avoidBuggyIPs: false }]);
    for (let i = 0; i < 250; i++) {
      a.assign({
        namespace: 'm',
        name: `m${i}`,
        labels: {},
        requestedIPs: [],
        ipFamilyPolicy: 'SingleStack',
        ipFamilies: v6 ? [6] : [],
        ports: [{ protocol: 'TCP', port: 80 }],
      });
    }
    gc?.();
    const used = process.memoryUsage().heapUsed - before;
    if (a.allocations().length !== 250) throw new Error('allocation failed');
    return used;
  };
  heapFor(['10.0.0.0/24'], false);
  const heap24 = median([1, 2, 3].map(() => heapFor(['10.0.0.0/24'], false)));
  const heap64 = median([1, 2, 3].map(() => heapFor(['2001:db8::/64'], true)));
  return {
    coldTotalMs: cold.totalMs,
    totalMs: median(runs.map((r) => r.totalMs)),
    perAllocAt1k: median(runs.map((r) => r.perAllocAt1k)),
    perAllocAt10k: median(runs.map((r) => r.perAllocAt10k)),
    failures: cold.failures,
    heap24,
    heap64,
    rssAfterCold,
  };
}

/** The peer: first-fit linear scan over each range, string-keyed in-use maps (MetalLB's approach). */
function runScan(): Record<string, number> {
  const ranges = new Map<string, Array<{ v6: boolean; start: bigint; end: bigint }>>([
    ['a', [{ v6: false, start: 0xc6120000n, end: 0xc6123fffn }]],
    ['b', [{ v6: false, start: 0xc6124000n, end: 0xc6127fffn }]],
    [
      'c',
      [
        { v6: false, start: 0xc6128000n, end: 0xc612bfffn },
        { v6: true, start: 0x20010db8n << 96n, end: (0x20010db8n << 96n) + (1n << 64n) - 1n },
      ],
    ],
  ]);
  const v4 = (n: bigint) => {
    const x = Number(n);
    return `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`;
  };
  const v6 = (n: bigint) => `v6:${n.toString(16)}`;
  const inUse = new Map<string, { key: string | undefined; ports: Set<string> }>();
  const ok = (ip: string, s: ServiceRequest) => {
    const u = inUse.get(ip);
    if (u === undefined) return true;
    if (s.sharingKey === undefined || u.key !== s.sharingKey) return false;
    return s.ports.every((p) => !u.ports.has(`${p.protocol}/${p.port}`));
  };
  const take = (ip: string, s: ServiceRequest) => {
    const u = inUse.get(ip) ?? { key: s.sharingKey, ports: new Set<string>() };
    for (const p of s.ports) u.ports.add(`${p.protocol}/${p.port}`);
    inUse.set(ip, u);
  };
  const scan = (pool: string, want6: boolean, s: ServiceRequest, avoid: boolean): string | undefined => {
    for (const r of ranges.get(pool)!) {
      if (r.v6 !== want6) continue;
      for (let n = r.start; n <= r.end; n++) {
        if (avoid && !r.v6 && ((n & 255n) === 0n || (n & 255n) === 255n)) continue;
        const ip = r.v6 ? v6(n) : v4(n);
        if (ok(ip, s)) return ip;
      }
    }
    return undefined;
  };
  const assign = (s: ServiceRequest) => {
    if (s.requestedIPs.length > 0) {
      if (!ok(s.requestedIPs[0]!, s)) throw new Error('in use');
      take(s.requestedIPs[0]!, s);
      return;
    }
    const fams = s.ipFamilyPolicy === 'RequireDualStack' ? [false, true] : [s.ipFamilies[0] === 6];
    for (const pool of ['a', 'b', 'c']) {
      const ips = fams.map((f) => scan(pool, f, s, pool === 'a'));
      if (ips.every((ip) => ip !== undefined)) {
        for (const ip of ips) take(ip!, s);
        return;
      }
    }
    throw new Error('full');
  };
  const r = measure(assign);
  return {
    coldTotalMs: r.totalMs,
    totalMs: r.totalMs,
    perAllocAt1k: r.perAllocAt1k,
    perAllocAt10k: r.perAllocAt10k,
    failures: r.failures,
  };
}

function child(kind: string): Record<string, number> {
  const out = execFileSync(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--worker', kind],
    {
      encoding: 'utf8',
    },
  );
  return JSON.parse(out) as Record<string, number>;
}

const workerAt = process.argv.indexOf('--worker');
if (workerAt >= 0) {
  const kind = process.argv[workerAt + 1];
  const figures = kind === 'vipmesh' ? runVipmesh() : kind === 'scan' ? runScan() : {};
  process.stdout.write(JSON.stringify({ ...figures, maxRssMB: process.resourceUsage().maxRSS / 1024 }));
} else {
  const idle = child('idle');
  const vip = child('vipmesh');
  const scan = child('scan');
  const f = (n: number, d = 1) => n.toFixed(d);
  const lines = [
    `workload: ${N} Services (10% pinned, 20% TCP/UDP sharing pairs, 10% IPv6, 10% dual stack, 50% IPv4) over 65,536 IPv4 addresses + an IPv6 /64`,
    `vipmesh total time (median of 5 warm runs): ${f(vip['totalMs']!)} ms`,
    `vipmesh total time (first, cold run): ${f(vip['coldTotalMs']!)} ms`,
    `vipmesh cost per allocation at 1,000 allocated: ${f(vip['perAllocAt1k']! * 1000, 2)} us`,
    `vipmesh cost per allocation at 10,000 allocated: ${f(vip['perAllocAt10k']! * 1000, 2)} us`,
    `vipmesh cost ratio 10,000/1,000: ${f(vip['perAllocAt10k']! / vip['perAllocAt1k']!, 2)}`,
    `vipmesh failed allocations: ${vip['failures']}`,
    `vipmesh heap for 250 allocations in a /24: ${f(vip['heap24']! / 1024)} KiB`,
    `vipmesh heap for 250 allocations in a /64: ${f(vip['heap64']! / 1024)} KiB`,
    `vipmesh peak RSS after allocating 10,000 (the cold run): ${f(vip['rssAfterCold']!)} MB`,
    `vipmesh peak RSS after all 6 runs and the heap probes: ${f(vip['maxRssMB']!)} MB`,
    `peer (first-fit linear scan, MetalLB's algorithm) total time: ${f(scan['totalMs']!)} ms`,
    `peer cost per allocation at 1,000 allocated: ${f(scan['perAllocAt1k']! * 1000, 2)} us`,
    `peer cost per allocation at 10,000 allocated: ${f(scan['perAllocAt10k']! * 1000, 2)} us`,
    `peer cost ratio 10,000/1,000: ${f(scan['perAllocAt10k']! / scan['perAllocAt1k']!, 2)}`,
    `peer failed allocations: ${scan['failures']}`,
    `peer peak RSS: ${f(scan['maxRssMB']!)} MB`,
    `baseline peak RSS (same runtime, no work): ${f(idle['maxRssMB']!)} MB`,
    `ratio total time peer/vipmesh (cold): ${f(scan['totalMs']! / vip['coldTotalMs']!, 1)}`,
    `ratio total time peer/vipmesh (warm): ${f(scan['totalMs']! / vip['totalMs']!, 1)}`,
    `goal total time <= 1000 ms: ${vip['coldTotalMs']! <= 1000 ? 'met' : 'NOT met'}`,
    `goal cost at 10,000 within 2x of cost at 1,000: ${vip['perAllocAt10k']! <= 2 * vip['perAllocAt1k']! ? 'met' : 'NOT met'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
