/**
 * `vipmesh demo`: a whole cluster in network namespaces on one bridge (a server, two agents, a client),
 * the config/demo pool and pinned Service applied through the API, a client connecting to the VIP every
 * 5 ms, the holder's cable pulled, and the time the client was without service printed. Everything is
 * torn down at the end, on error, and on Ctrl-C (the lab's exit hook).
 */

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VipmeshError } from '../errors.js';
import { measureCut, Prober, startNameServer, summarize } from './failover.js';
import { canUseNetns, Lab } from './index.js';
import { vipmeshCli } from './scripts.js';

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** How many times to pull the holder's cable (default 1). */
  cuts: number;
  /** Progress lines go here. */
  print: (line: string) => void;
}

const SERVER = { name: 's1', ip: '198.51.100.10' };
const AGENTS = [
  { name: 'n1', ip: '198.51.100.11' },
  { name: 'n2', ip: '198.51.100.12' },
];
const CLIENT = { name: 'c1', ip: '198.51.100.50' };
const VIP = '198.51.100.100';
const PORT = 8080;

/** Where the config/ examples are (the package root's config/demo). */
function demoConfigDir(): string {
  return fileURLToPath(new URL('../../config/demo', import.meta.url));
}

/** The daemons' recent output, added to a failure's message. */
let failureContext = (): string => '';

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) {
      throw new VipmeshError(
        'VIPMESH_DEMO_FAILED',
        `demo: timed out waiting for ${what}\n${failureContext()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Run the demo; resolves with the measured outages (ms). */
export async function runDemo(opts: DemoOptions): Promise<number[]> {
  if (!canUseNetns()) {
    throw new VipmeshError(
      'VIPMESH_DEMO_NEEDS_ROOT',
      'vipmesh demo builds network namespaces: run it as root (sudo)',
    );
  }
  const say = opts.print;
  const cli = vipmeshCli();
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-demo-'));
  const lab = await Lab.create();
  try {
    say(
      `building the lab: bridge + ${[SERVER, ...AGENTS, CLIENT].map((n) => `${n.name} ${n.ip}`).join(', ')}`,
    );
    for (const n of [SERVER, ...AGENTS, CLIENT]) await lab.addNode(n.name, { ipv4: `${n.ip}/24` });

    const sdir = join(dir, SERVER.name);
    const adminConfig = join(sdir, 'vipmesh.yaml');
    // The daemons must not read the host's /etc/vipmesh/config.yaml: give them an empty one.
    const emptyConfig = join(dir, 'config.yaml');
    writeFileSync(emptyConfig, '');
    const env = { ...process.env, VIPMESH_CONFIG: emptyConfig, VIPMESH_LOG_LEVEL: 'warn' };
    const logs = new Map<string, string>();
    const keepLog = (name: string, child: ChildProcess): void => {
      const append = (b: Buffer): void => {
        logs.set(name, ((logs.get(name) ?? '') + b.toString()).slice(-4000));
      };
      child.stdout?.on('data', append);
      child.stderr?.on('data', append);
    };
    failureContext = () => [...logs].map(([n, l]) => `--- ${n}:\n${l}`).join('\n');
    const server = lab.spawn(
      SERVER.name,
      [
        ...cli,
        'server',
        '--data-dir',
        sdir,
        '--node-name',
        SERVER.name,
        '--node-ip',
        SERVER.ip,
        '--disable-agent',
        '--cluster-cidr',
        '198.18.0.0/16',
        '--admin-config',
        adminConfig,
        '--metrics-bind-address',
        '',
      ],
      { env },
    );
    keepLog(SERVER.name, server);
    const vipmesh = (node: string, args: string[]) =>
      lab.exec(node, [...cli, ...args, '--admin-config', adminConfig]);
    await until(
      'the server API',
      async () => ((await vipmesh(SERVER.name, ['get', 'nodes'])).code === 0 ? true : undefined),
      60_000,
    );
    const token = (await lab.run(SERVER.name, [...cli, 'token', '--data-dir', sdir])).trim();
    say(`server up on https://${SERVER.ip}:6443 (join token ${token.slice(0, 14)}...)`);

    for (const a of AGENTS) {
      const adir = join(dir, a.name);
      const agent = lab.spawn(
        a.name,
        [
          ...cli,
          'agent',
          '--server',
          `https://${SERVER.ip}:6443`,
          '--token',
          token,
          '--node-name',
          a.name,
          '--node-ip',
          a.ip,
          '--data-dir',
          adir,
          '--state-dir',
          join(adir, 'run'),
          '--flannel-subnet-env',
          join(adir, 'subnet.env'),
        ],
        { env },
      );
      keepLog(a.name, agent);
    }
    await until(
      'both agents Ready',
      async () => {
        const r = await vipmesh(SERVER.name, ['get', 'nodes', '-o', 'json']);
        if (r.code !== 0) return undefined;
        const list = JSON.parse(r.stdout) as {
          items: Array<{ status?: { conditions?: Array<{ type: string; status: string }> } }>;
        };
        const ready = list.items.filter((n) =>
          n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        );
        return ready.length === AGENTS.length ? true : undefined;
      },
      60_000,
    );
    say(`agents ${AGENTS.map((a) => a.name).join(' and ')} joined and are Ready`);

    for (const a of AGENTS) await startNameServer(lab, a.name, PORT);
    const applied = await vipmesh(SERVER.name, ['apply', '-f', demoConfigDir()]);
    if (applied.code !== 0)
      throw new VipmeshError('VIPMESH_DEMO_FAILED', `demo: apply failed: ${applied.stderr}`);
    for (const line of applied.stdout.trim().split('\n')) say(`applied: ${line}`);

    const prober = new Prober(lab, CLIENT.name, VIP, PORT);
    let holder = await prober.stable(1000, 60_000);
    const svc = await vipmesh(SERVER.name, ['get', 'services', '-o', 'wide']);
    say(`the client reaches ${VIP}:${PORT} and ${holder} answers\n${svc.stdout.trimEnd()}`);

    const outages: number[] = [];
    for (let i = 0; i < opts.cuts; i++) {
      say(`pulling ${holder}'s cable...`);
      const cut = await measureCut(lab, prober);
      outages.push(cut.outageMs);
      say(`the client was without service for ${cut.outageMs.toFixed(0)} ms; ${cut.newHolder} answers now`);
      await lab.restore(cut.victim);
      holder = await prober.stable(1500, 60_000);
      say(
        `${cut.victim}'s cable is back; the VIP ${holder === cut.newHolder ? `stays on ${holder} (no flap)` : `moved to ${holder}`}`,
      );
    }
    prober.stop();
    if (outages.length > 1) {
      const s = summarize(outages);
      say(`outage over ${s.n} cuts: median ${s.median.toFixed(0)} ms, p99 ${s.p99.toFixed(0)} ms`);
    }
    return outages;
  } finally {
    say('tearing the lab down');
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
