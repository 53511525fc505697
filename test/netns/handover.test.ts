/**
 * Planned hand-over end to end: a server and two agents on one bridge, a client connecting to a Service
 * VIP every 5 ms (on a port only the holder's DNAT rules serve) while the holder's agent is SIGTERMed (what
 * `systemctl stop` and a reboot do). The VIP moves to the other node, no connection attempt times out or is
 * refused (so the new holder announced it only with its rules in; one open across the move may be reset), and
 * the stopped node is NotReady with reason AgentStopping until its agent starts again. The same for
 * `vipmesh drain` of a running node, and for SIGTERM of the server whose local agent holds the VIP. The
 * figures themselves are measured in bench/failover.ts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { LabCluster } from '../../src/lab/cluster.js';
import { measureHandover, Prober, startNameServer } from '../../src/lab/failover.js';
import { Lab } from '../../src/lab/index.js';
import { canUseNetns } from './lab.js';

const skip = canUseNetns() ? false : 'needs root and the ip tool (network namespaces)';
const VIP = '198.51.100.100';
const SERVER_IP = '198.51.100.10';
const NODES = { n1: '198.51.100.11', n2: '198.51.100.12' } as const;

const MANIFEST = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec: {addresses: [${VIP}/32]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec: {ipAddressPools: [lan]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, loadBalancerIP: ${VIP}, ports: [{port: 80, targetPort: 8080, protocol: TCP}]}
`;

/**
 * A server, the agents of NODES and a client on one bridge, the Service of MANIFEST applied and the client
 * answered steadily; torn down at the end of `t`. With `serverHolds` the server runs its local agent and the
 * Service is applied while its node is the only one, so the server's node holds the VIP (placement is
 * sticky when the agents join).
 */
async function webCluster(
  t: Test,
  opts: { serverHolds?: boolean } = {},
): Promise<{ cluster: LabCluster; prober: Prober }> {
  const lab = await Lab.create();
  const cluster = new LabCluster(lab, 's1', SERVER_IP, 'info');
  t.teardown(async () => {
    await lab.destroy();
    cluster.cleanup();
  });
  await lab.addNode('s1', { ipv4: `${SERVER_IP}/24` });
  for (const [n, ip] of Object.entries(NODES)) await lab.addNode(n, { ipv4: `${ip}/24` });
  await lab.addNode('c1', { ipv4: '198.51.100.50/24' });
  for (const n of Object.keys(NODES)) await startNameServer(lab, n);
  const file = join(cluster.dir, 'web.yaml');
  writeFileSync(file, MANIFEST);
  if (opts.serverHolds === true) {
    await startNameServer(lab, 's1');
    await cluster.startServerHolding(file);
  } else {
    await cluster.startServer();
  }
  for (const [n, ip] of Object.entries(NODES)) cluster.startAgent(n, ip);
  await cluster.waitReady(Object.keys(NODES));
  if (opts.serverHolds !== true) await cluster.apply(file);
  // Port 80 reaches the name servers' 8080 only through the holder's DNAT rules: a VIP announced ahead of
  // its rules refuses connections.
  const prober = new Prober(lab, 'c1', VIP, 80);
  t.teardown(() => prober.stop());
  await prober.stable(1000, 60_000);
  return { cluster, prober };
}

t.test(
  'SIGTERM the holder: the VIP moves make-before-break and no connection attempt times out',
  { skip },
  async (t) => {
    const { cluster, prober } = await webCluster(t);

    for (let round = 1; round <= 2; round++) {
      const r = await measureHandover(prober, (victim) => cluster.stop(victim));
      t.not(r.newHolder, r.victim, `round ${round}: the VIP moved from ${r.victim} to ${r.newHolder}`);
      // A gap in announcing shows as attempts that time out (a SYN to a node that no longer has the VIP is
      // dropped). A connection open across the instant the client's ARP entry moves is reset by the new
      // holder instead: no layer-2 move avoids that, and at one connection every 5 ms it happens about once
      // in twenty hand-overs (bench/failover.ts), so one reset is tolerated here and counted there.
      const resets = r.failures.filter((f) => f.why === 'ECONNRESET').length;
      t.same(
        r.failures.filter((f) => f.why !== 'ECONNRESET'),
        [],
        `round ${round}: no connection timed out or was refused (longest gap ${r.gapMs.toFixed(1)} ms)`,
      );
      t.ok(resets <= 1, `round ${round}: at most one connection reset (${resets})`);
      t.ok(
        r.stopMs < 5000,
        `round ${round}: the agent exited on the announcement, not the timeout (${r.stopMs.toFixed(0)} ms)`,
      );
      const nodes = await cluster.vipmesh(['get', 'node', r.victim, '-o', 'json']);
      const ready = (
        JSON.parse(nodes.stdout) as {
          status: { conditions: Array<{ type: string; status: string; reason: string }> };
        }
      ).status.conditions.find((c) => c.type === 'Ready');
      t.same(
        [ready?.status, ready?.reason],
        ['False', 'AgentStopping'],
        `round ${round}: ${r.victim} is NotReady`,
      );
      // Back in: the next round stops the other node and the VIP comes here.
      cluster.startAgent(r.victim, NODES[r.victim as keyof typeof NODES]);
      await cluster.waitReady(Object.keys(NODES));
      await prober.stable(500, 60_000);
    }
  },
);

t.test(
  'vipmesh drain the holder: the VIP moves make-before-break while its agent keeps running',
  { skip },
  async (t) => {
    const { cluster, prober } = await webCluster(t);

    let drain = { code: -1, stdout: '', stderr: '' };
    const r = await measureHandover(prober, async (victim) => {
      drain = await cluster.vipmesh(['drain', victim]);
    });
    t.equal(drain.code, 0, `drain exits 0 (${drain.stderr})`);
    t.match(drain.stdout, new RegExp(`node/${r.victim} drained \\(1 VIP moved\\)`), 'and says so');
    t.not(r.newHolder, r.victim, `the VIP moved from ${r.victim} to ${r.newHolder}`);
    t.same(
      r.failures.filter((f) => f.why !== 'ECONNRESET'),
      [],
      `no connection timed out or was refused (longest gap ${r.gapMs.toFixed(1)} ms)`,
    );
    t.ok(r.failures.length <= 1, `at most one connection reset (${r.failures.length})`);
    const agent = cluster.daemons.get(r.victim)!;
    t.equal(agent.child.exitCode, null, "the drained node's agent still runs");
    t.ok(
      await cluster.until(`${r.victim} let the VIP go on the new holder's announcement`, async () =>
        cluster.logs().includes('the new holder announces the VIP; releasing it') ? true : undefined,
      ),
      "the old holder answered until the new holder's announcement, then let go",
    );
    const shown = await cluster.vipmesh(['get', 'nodes']);
    t.match(shown.stdout, new RegExp(`${r.victim}\\s+Ready,SchedulingDisabled\\s`), 'Ready and cordoned');

    // Uncordon ends the drain; the VIP stays where it went (placement is sticky).
    t.equal((await cluster.vipmesh(['uncordon', r.victim])).code, 0, 'uncordon');
    const node = JSON.parse((await cluster.vipmesh(['get', 'node', r.victim, '-o', 'json'])).stdout) as {
      metadata: { annotations?: Record<string, string> };
    };
    t.equal(node.metadata.annotations?.['vipmesh.io/drain'], undefined, 'the drain annotation is gone');
    await prober.stable(500, 60_000);
    const last = prober.lines.filter((l) => l.ok).at(-1);
    t.equal(last?.from, r.newHolder, 'the VIP stays on its new holder');
  },
);

t.test(
  'SIGTERM the server whose local agent holds the VIP: it hands the VIP over before it stops',
  { skip },
  async (t) => {
    const { cluster, prober } = await webCluster(t, { serverHolds: true });

    let exitCode: number | null = -1;
    const r = await measureHandover(prober, async (victim) => {
      exitCode = await cluster.stop(victim);
    });
    t.equal(r.victim, 's1', "the server's node held the VIP");
    t.equal(exitCode, 0, 'the server exits 0');
    t.not(r.newHolder, 's1', `the VIP moved to ${r.newHolder}`);
    t.same(
      r.failures.filter((f) => f.why !== 'ECONNRESET'),
      [],
      `no connection timed out or was refused (longest gap ${r.gapMs.toFixed(1)} ms)`,
    );
    t.ok(r.failures.length <= 1, `at most one connection reset (${r.failures.length})`);
    const logs = cluster.logs();
    t.match(logs, /"msg":"VIPs handed over"/, "the local agent let go on the new holder's announcement");
    t.notMatch(logs, /releasing anyway/, 'not at the hand-over timeout');
    t.ok(r.stopMs < 5000, `the server stopped within the hand-over timeout (${r.stopMs.toFixed(0)} ms)`);

    // The server starts again: its node is Ready, and the VIP stays on its new holder (placement is sticky).
    await cluster.startServer([], { localAgent: true });
    await cluster.waitReady(['s1', ...Object.keys(NODES)]);
    await prober.stable(500, 60_000);
    const last = prober.lines.filter((l) => l.ok).at(-1);
    t.equal(last?.from, r.newHolder, 'the VIP stays on its new holder after the restart');
  },
);
