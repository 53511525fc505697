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
import { existsSync, mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
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

async function wrk(
  lab: LbLab,
  url: string,
  close: boolean,
): Promise<{ rps: number; p50: number; p99: number }> {
  const hdr = close ? ['-H', 'Connection: close'] : [];
  const out = await lab.c.lab.run('client', ['wrk', '-t2', '-c32', '-d5s', '--latency', ...hdr, url], 60_000);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p50 = ms(/\s50%\s+(\S+)/.exec(out)?.[1] ?? '');
  const p99 = ms(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
  return { rps, p50, p99 };
}

const NGINX = '/usr/sbin/nginx';

/**
 * An nginx backend in `node`'s namespace, as the tests' backend answers: `/` says who answered, `/bulk`
 * sends 256 MiB (a sparse file). One process (no master), so killing it kills the backend.
 */
async function startNginx(lab: LbLab, node: string): Promise<void> {
  const dir = join(lab.c.dir, `nginx-${node}`);
  mkdirSync(dir, { recursive: true });
  const bulkFile = join(dir, 'bulk.bin');
  writeFileSync(bulkFile, '');
  truncateSync(bulkFile, 256 << 20);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    [
      'daemon off;',
      'master_process off;',
      'worker_processes 1;',
      `pid ${dir}/nginx.pid;`,
      'error_log stderr warn;',
      'events { worker_connections 4096; }',
      'http {',
      '  access_log off;',
      `  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir};`,
      `  uwsgi_temp_path ${dir}; scgi_temp_path ${dir};`,
      '  sendfile on;',
      '  keepalive_requests 1000000;',
      '  server {',
      '    listen 8080; listen [::]:8080;',
      `    location = / { return 200 "${node}\\n"; }`,
      `    location /bulk { alias ${bulkFile}; default_type application/octet-stream; }`,
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  const proc = lab.c.lab.spawn(node, [NGINX, '-p', dir, '-e', 'stderr', '-c', conf]);
  proc.stderr!.on('data', (d: Buffer) => process.stderr.write(`${node} nginx: ${d.toString()}`));
  lab.backends.set(node, proc);
  const b = BACKENDS[node as keyof typeof BACKENDS];
  await until(`nginx on ${node}`, () => lab.curl(`http://${b.ipv4}:8080/`), { timeoutMs: 10_000 });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ROUNDS = 3;

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
  const nginx = existsSync(NGINX);
  for (const name of Object.keys(BACKENDS)) {
    if (nginx) await startNginx(lab, name);
    else await lab.startBackend(name, ['--http', '8080']);
  }
  console.log(
    nginx
      ? 'backends: nginx (one process each), so that the backends are not what limits the figures'
      : `backends: the Node test backends (${NGINX} is not installed: apt-get install nginx-light)`,
  );
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

  console.log(
    `short HTTP requests (wrk -t2 -c32 -d5s; medians of ${ROUNDS} alternating rounds) and bulk TCP (256 MiB) ` +
      `from the client namespace; load average ${loadavg()[0]!.toFixed(2)} at the start`,
  );
  const targets = [
    ['direct (one backend)', `http://${BACKENDS.b1.ipv4}:8080/`],
    ['vipmesh nftables', `http://${VIP}/`],
    ['HAProxy tcp', `http://${HAPROXY}/`],
  ] as const;
  const rps: Record<string, number> = {};
  for (const close of [false, true]) {
    console.log(close ? '  a new connection per request (Connection: close):' : '  keep-alive connections:');
    const runs = targets.map(() => [] as Array<{ rps: number; p50: number; p99: number }>);
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, [, url]] of targets.entries()) runs[i]!.push(await wrk(lab, url, close));
    }
    for (const [i, [n]] of targets.entries()) {
      const r = {
        rps: median(runs[i]!.map((x) => x.rps)),
        p50: median(runs[i]!.map((x) => x.p50)),
        p99: median(runs[i]!.map((x) => x.p99)),
      };
      rps[`${n}|${close}`] = r.rps;
      console.log(
        `    ${n.padEnd(22)} ${r.rps.toFixed(0).padStart(7)} req/s   p50 ${r.p50.toFixed(2)} ms   p99 ${r.p99.toFixed(2)} ms` +
          `   (rounds: ${runs[i]!.map((x) => x.rps.toFixed(0)).join(', ')})`,
      );
    }
    const [d, v, h] = targets.map(([n]) => rps[`${n}|${close}`]!);
    console.log(
      `    ratios: vipmesh/direct req/s ${(v! / d!).toFixed(2)} (goal >= 0.90), vipmesh/HAProxy req/s ${(v! / h!).toFixed(2)} (goal >= 2)`,
    );
  }
  const bDirect = await bulk(lab, `http://${BACKENDS.b1.ipv4}:8080/bulk?mb=256`);
  const bVm = await bulk(lab, `http://${VIP}/bulk?mb=256`);
  const bHp = await bulk(lab, `http://${HAPROXY}/bulk?mb=256`);
  console.log(
    `  bulk: direct ${bDirect.toFixed(0)} Mbit/s, vipmesh ${bVm.toFixed(0)} Mbit/s, HAProxy ${bHp.toFixed(0)} Mbit/s; ` +
      `vipmesh/direct ${(bVm / bDirect).toFixed(2)}, vipmesh/HAProxy ${(bVm / bHp).toFixed(2)}`,
  );
  console.log(`  load average ${loadavg()[0]!.toFixed(2)} at the end`);

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
  // The same one-Service changes, alternately through a kept `nft -i` (what the agent runs, in the
  // holder's namespace) and through one `nft -f` per update (in the client's namespace: each table has
  // its own ruleset, so neither moves the other's generation and forces a cache reload).
  // CPU time of nft itself, which the load on this shared machine does not inflate: the kept nft's from
  // /proc (clock ticks), each nft -f's from bash's `time`.
  let keptPid = 0;
  const session = new NftSession({
    spawn: (file, args) => {
      const child = spawnProcess('ip', ['netns', 'exec', ns, file, ...args]);
      keptPid = child.pid ?? 0;
      return child;
    },
    clock: systemClock,
  });
  const ticks = () => {
    const f = readFileSync(`/proc/${keptPid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]); // utime, stime
  };
  const clientNs = lab.c.lab.node('client').ns;
  let nftFCpuMs = 0;
  const inClientNs: RunCommand = async (file, args, stdin) => {
    const script = 'TIMEFORMAT="%3U %3S"; time "$0" "$@"';
    const r = await runCommand('ip', ['netns', 'exec', clientNs, 'bash', '-c', script, file, ...args], stdin);
    const m = /(\d+\.\d+) (\d+\.\d+)\n?$/.exec(r.stderr);
    if (m !== null) nftFCpuMs += (Number(m[1]) + Number(m[2])) * 1000;
    return { ...r, stderr: m === null ? r.stderr : r.stderr.slice(0, m.index) };
  };
  const kept = new NftTable({ run: inNs, session, clock: systemClock, logger: silentLogger() });
  const perUpdate = new NftTable({ run: inClientNs, clock: systemClock, logger: silentLogger() });
  const full = await kept.apply(render({ services: svcs }).ruleset);
  await perUpdate.apply(render({ services: svcs }).ruleset);
  const viaSession: number[] = [];
  const viaNftF: number[] = [];
  // One change first: the kept nft starts and loads its cache once, as after an agent's start.
  await kept.apply(variant(21));
  await perUpdate.apply(variant(21));
  let keptTicks = 0;
  let nftFUpdateCpuMs = 0; // the updates' own nft -f, not the listings for the compare that follow them
  for (let i = 0; i < 21; i++) {
    for (const [table, into] of [
      [kept, viaSession],
      [perUpdate, viaNftF],
    ] as const) {
      const t0 = table === kept ? ticks() : 0;
      const cpu0 = nftFCpuMs;
      const r = await table.apply(variant(i));
      if (table === kept) keptTicks += ticks() - t0;
      else nftFUpdateCpuMs += nftFCpuMs - cpu0;
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
  const tick = 1000 / 100; // ms per clock tick (USER_HZ)
  console.log(
    `  nft CPU per one-Service update (not inflated by the machine's load): kept nft -i ` +
      `${((keptTicks * tick) / viaSession.length).toFixed(1)} ms, nft -f ${(nftFUpdateCpuMs / viaNftF.length).toFixed(1)} ms; ` +
      `load average ${loadavg()[0]!.toFixed(2)}`,
  );
  await kept.remove();
  await perUpdate.remove();
} finally {
  await lab.destroy();
}
console.log('(a shared, busy 2-core machine: figures vary from run to run)');
