/**
 * Load balancer benchmark, in namespaces this script creates (the lab of test/netns/lb-fixture.ts: the real
 * `vipmesh agent` on the holder, three HTTP backends, a client). In one run:
 *   - short HTTP requests (wrk: requests/s, p50, p99) and bulk TCP (curl of 256 MiB) through vipmesh's
 *     nftables rules, through HAProxy in TCP mode (`balance random`, `check`) on the same holder over the
 *     same backends, and direct to one backend;
 *   - the time from a backend's death to its removal from the table;
 *   - the cost of a rule update for one Service with 1,000 Services × 10 endpoints installed.
 *
 *   node --import tsx bench/lb.ts            (root; needs wrk, curl, haproxy, nft)
 *
 * Goals: within 10% of direct, at least 2x HAProxy's requests/s, a one-Service update under 10 ms.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TOPIC_SERVICES, TOPIC_VIPS } from '../src/api/agent-protocol.js';
import { systemClock } from '../src/clock.js';
import { NftSession, NftTable, type RunCommand, render, runCommand, spawnProcess } from '../src/lb/index.js';
import { silentLogger } from '../src/log.js';
import { manyServices } from '../src/testing/lb-services.js';
import { until } from '../src/testing/until.js';
import { BACKENDS, HOLDER, LbLab } from '../test/netns/lb-fixture.js';

const VIP = '198.51.100.10';
const HAPROXY = '198.51.100.3';
const CHECK = {
  type: 'tcp' as const,
  path: '/',
  expectStatus: [200, 399] as [number, number],
  intervalMs: 200,
  timeoutMs: 500,
  rise: 1,
  fall: 2,
};

/** `1.23ms` / `456.00us` / `1.2s` in ms. */
function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (m === null) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

async function wrk(lab: LbLab, url: string): Promise<{ rps: number; p50: number; p99: number }> {
  const out = await lab.c.lab.run('client', ['wrk', '-t2', '-c32', '-d5s', '--latency', url], 60_000);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p50 = ms(/\s50%\s+(\S+)/.exec(out)?.[1] ?? '');
  const p99 = ms(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
  return { rps, p50, p99 };
}

async function bulk(lab: LbLab, url: string): Promise<number> {
  const out = await lab.c.lab.run(
    'client',
    ['curl', '-sS', '-o', '/dev/null', '-w', '%{speed_download}', url],
    120_000,
  );
  return (Number(out) * 8) / 1e6; // Mbit/s
}

const lab = await LbLab.create();
try {
  for (const name of Object.keys(BACKENDS)) await lab.startBackend(name, ['--http', '8080']);
  await lab.startServer();
  const web = {
    namespace: 'default',
    name: 'web',
    vips: [VIP],
    ports: [{ protocol: 'TCP' as const, port: 80, targetPort: 8080 }],
    endpoints: Object.values(BACKENDS).map((b) => ({ ip: b.ipv4, ports: [], ready: true })),
    externalTrafficPolicy: 'Cluster' as const,
    sessionAffinity: 'None' as const,
    affinityTimeoutSeconds: 10_800,
    algorithm: 'random' as const,
    healthCheck: CHECK,
  };
  lab.push(TOPIC_VIPS, { vips: [{ ip: VIP }] });
  lab.push(TOPIC_SERVICES, { services: [web] });
  await lab.startAgent();
  await until('the VIP answers', () => lab.curl(`http://${VIP}/`), { timeoutMs: 30_000 });

  // HAProxy 2.6 on the same holder, on an address of its own, doing the same spreading.
  await lab.c.lab.run('holder', ['ip', 'addr', 'add', `${HAPROXY}/32`, 'dev', 'lo']);
  await lab.c.lab.run('client', ['ip', 'route', 'add', `${HAPROXY}/32`, 'via', HOLDER.ipv4]);
  const cfg = join(lab.c.dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 4096',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 30s',
      '  timeout server 30s',
      'frontend web',
      `  bind ${HAPROXY}:80`,
      '  default_backend be',
      'backend be',
      '  balance random',
      ...Object.entries(BACKENDS).map(
        ([n, b]) => `  server ${n} ${b.ipv4}:8080 check inter 200 fall 2 rise 1`,
      ),
      '',
    ].join('\n'),
  );
  lab.c.lab.spawn('holder', ['haproxy', '-db', '-f', cfg]);
  await until('haproxy answers', () => lab.curl(`http://${HAPROXY}/`), { timeoutMs: 10_000 });

  console.log('short HTTP requests (wrk -t2 -c32 -d5s) and bulk TCP (256 MiB) from the client namespace');
  const direct = await wrk(lab, `http://${BACKENDS.b1.ipv4}:8080/`);
  const vm = await wrk(lab, `http://${VIP}/`);
  const hp = await wrk(lab, `http://${HAPROXY}/`);
  for (const [n, r] of [
    ['direct (one backend)', direct],
    ['vipmesh nftables', vm],
    ['HAProxy tcp', hp],
  ] as const) {
    console.log(
      `  ${n.padEnd(22)} ${r.rps.toFixed(0).padStart(7)} req/s   p50 ${r.p50.toFixed(2)} ms   p99 ${r.p99.toFixed(2)} ms`,
    );
  }
  const bDirect = await bulk(lab, `http://${BACKENDS.b1.ipv4}:8080/bulk?mb=256`);
  const bVm = await bulk(lab, `http://${VIP}/bulk?mb=256`);
  const bHp = await bulk(lab, `http://${HAPROXY}/bulk?mb=256`);
  console.log(
    `  bulk: direct ${bDirect.toFixed(0)} Mbit/s, vipmesh ${bVm.toFixed(0)} Mbit/s, HAProxy ${bHp.toFixed(0)} Mbit/s`,
  );
  console.log(
    `  ratios: vipmesh/direct req/s ${(vm.rps / direct.rps).toFixed(2)} (goal >= 0.90), vipmesh/HAProxy req/s ${(vm.rps / hp.rps).toFixed(2)} (goal >= 2), ` +
      `bulk vipmesh/direct ${(bVm / bDirect).toFixed(2)}, bulk vipmesh/HAProxy ${(bVm / bHp).toFixed(2)}`,
  );

  // A backend dies: how long until the table no longer sends to it.
  const t0 = Date.now();
  await lab.killBackend('b1');
  await until('b1 out of the table', async () => !(await lab.table())?.includes(BACKENDS.b1.ipv4), {
    timeoutMs: 20_000,
    stepMs: 5,
  });
  console.log(
    `backend death to removal: ${Date.now() - t0} ms (check every ${CHECK.intervalMs} ms, fall ${CHECK.fall}, timeout ${CHECK.timeoutMs} ms)`,
  );
  await lab.stopAgent();

  // 1,000 Services × 10 endpoints in the holder's namespace, then one Service changed.
  const ns = lab.c.lab.node('holder').ns;
  const inNs: RunCommand = (file, args, stdin) =>
    runCommand('ip', ['netns', 'exec', ns, file, ...args], stdin);
  const svcs = manyServices(1000, 10);
  const variant = (i: number) =>
    render({
      services: svcs.map((s, j) =>
        j === 500 ? { ...s, endpoints: s.endpoints.filter((_, k) => k !== i % 10) } : s,
      ),
    }).ruleset;
  const spawnCost: number[] = [];
  for (let i = 0; i < 5; i++) {
    const s = Date.now();
    await inNs('true', []);
    spawnCost.push(Date.now() - s);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  // The same one-Service changes, alternately through a kept `nft -i` (what the agent runs, in the
  // holder's namespace) and through one `nft -f` per update (in the client's namespace: each table has
  // its own ruleset, so neither moves the other's generation and forces a cache reload).
  const session = new NftSession({
    spawn: (file, args) => spawnProcess('ip', ['netns', 'exec', ns, file, ...args]),
    clock: systemClock,
  });
  const clientNs = lab.c.lab.node('client').ns;
  const inClientNs: RunCommand = (file, args, stdin) =>
    runCommand('ip', ['netns', 'exec', clientNs, file, ...args], stdin);
  const kept = new NftTable({ run: inNs, session, clock: systemClock, logger: silentLogger() });
  const perUpdate = new NftTable({ run: inClientNs, clock: systemClock, logger: silentLogger() });
  const full = await kept.apply(render({ services: svcs }).ruleset);
  await perUpdate.apply(render({ services: svcs }).ruleset);
  const viaSession: number[] = [];
  const viaNftF: number[] = [];
  for (let i = 0; i < 21; i++) {
    for (const [table, into] of [
      [kept, viaSession],
      [perUpdate, viaNftF],
    ] as const) {
      const r = await table.apply(variant(i));
      if (r.mode !== 'diff') throw new Error(`a one-Service change was a ${r.mode} update`);
      into.push(r.nftMs);
      await table.settled(); // the listing for the compare follows each update; measure updates alone
    }
  }
  const tRender = Date.now();
  render({ services: svcs });
  const renderMs = Date.now() - tRender;
  console.log(
    `1,000 Services × 10 endpoints: whole table ${full.nftMs.toFixed(0)} ms; one Service changed: median ` +
      `${median(viaSession).toFixed(1)} ms (max ${Math.max(...viaSession).toFixed(1)}) through the agent's kept nft -i, ` +
      `${median(viaNftF).toFixed(1)} ms through one nft -f per update (~${median(spawnCost)} ms of it starting nft ` +
      `through ip netns exec); render of all 1,000 ${renderMs} ms (goal < 10 ms per update)`,
  );
  await kept.remove();
  await perUpdate.remove();
} finally {
  await lab.destroy();
}
console.log('(a shared, busy 2-core machine: figures vary from run to run)');
