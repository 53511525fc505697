/**
 * `vipmesh demo`: a whole cluster in network namespaces on one bridge (a server, two agents, a client),
 * the config/demo pool and pinned Service applied through the API, a client connecting to the VIP every
 * 5 ms, the holder's cable pulled, and the time the client was without service printed. Everything is
 * torn down at the end, on error, and on Ctrl-C or SIGTERM (which says so, tears down, then lets the signal
 * end the process as it would have).
 */
import { fileURLToPath } from 'node:url';
import { VipmeshError } from '../errors.js';
import { LabCluster } from './cluster.js';
import { measureCut, Prober, startNameServer, summarize } from './failover.js';
import { canUseNetns, Lab } from './index.js';

/** Options of {@link runDemo}. */
interface DemoOptions {
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

/** Run the demo; resolves with the measured outages (ms). */
export async function runDemo(opts: DemoOptions): Promise<number[]> {
  if (!canUseNetns()) {
    throw new VipmeshError(
      'VIPMESH_DEMO_NEEDS_ROOT',
      'vipmesh demo builds network namespaces: run it as root (sudo)',
    );
  }
  const say = opts.print;
  let lab: Lab | undefined;
  let cluster: LabCluster | undefined;
  // Registered before the lab's own exit hook (installed by Lab.create) so that this line comes first.
  const onSignal = (sig: NodeJS.Signals): void => {
    say(`${sig === 'SIGINT' ? 'Ctrl-C' : sig}: tearing the lab down (daemons, namespaces, temp files)...`);
    lab?.destroySync();
    cluster?.cleanup();
    say('the lab is gone');
    // The lab's exit hook re-raises the signal; before it exists, end the process the same way here.
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  lab = await Lab.create();
  cluster = new LabCluster(lab, SERVER.name, SERVER.ip);
  try {
    say(
      `building the lab: bridge + ${[SERVER, ...AGENTS, CLIENT].map((n) => `${n.name} ${n.ip}`).join(', ')}`,
    );
    for (const n of [SERVER, ...AGENTS, CLIENT]) await lab.addNode(n.name, { ipv4: `${n.ip}/24` });
    await cluster.startServer(['--metrics-bind-address', '']);
    say(`server up on https://${SERVER.ip}:6443 (join token ${cluster.token.slice(0, 14)}...)`);
    for (const a of AGENTS) cluster.startAgent(a.name, a.ip);
    await cluster.waitReady(AGENTS.map((a) => a.name));
    say(`agents ${AGENTS.map((a) => a.name).join(' and ')} joined and are Ready`);

    for (const a of AGENTS) await startNameServer(lab, a.name, PORT);
    for (const line of await cluster.apply(demoConfigDir())) say(`applied: ${line}`);

    const prober = new Prober(lab, CLIENT.name, VIP, PORT);
    let holder = await prober.stable(1000, 60_000);
    const svc = await cluster.vipmesh(['get', 'services', '-o', 'wide']);
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
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    say('tearing the lab down');
    await lab.destroy();
    cluster.cleanup();
  }
}
