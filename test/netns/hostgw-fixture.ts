/**
 * Runs the host-gw stack inside a node namespace for test/netns/hostgw.test.ts (netlink sockets belong
 * to the namespace of the process that opens them, so the reconciler must live in a process started with
 * `ip netns exec`). Usage:
 *
 *   node --import tsx test/netns/hostgw-fixture.ts <node> <iface> <cluster-cidr> <subnet.env path>
 *
 * stdin: one JSON command per line: a lease array (`[{node, podCIDRs, nodeIPs}, ...]`) or `"resync"`.
 * stdout: one JSON event per line: `ready`, `result` (after each command), `refused`, `restoring`.
 * Exits (routes left in place) on stdin end or SIGTERM.
 */
import { createInterface } from 'node:readline';
import {
  createHostGw,
  createRouteNetlink,
  type Lease,
  type ReconcileResult,
} from '../../src/flannel-hostgw/index.js';
import { createLogger } from '../../src/log.js';

// `hostgw-fixture batch <iface>`: send five route requests in one datagram, the second with an off-link
// next hop and the fourth a delete of a route that does not exist, and print each outcome (one ack per
// datagram must still report every failure against the right request).
if (process.argv[2] === 'batch') {
  const nl = createRouteNetlink();
  const ifindex = (await nl.listLinks()).find((l) => l.name === process.argv[3])!.index;
  const via = (dst: string, gateway: string) => nl.replaceRoute({ dst, gateway, ifindex, protocol: 86 });
  const outcomes = await Promise.allSettled([
    via('198.18.51.0/24', '198.51.100.12'),
    via('198.18.52.0/24', '198.51.100.201'),
    via('198.18.53.0/24', '198.51.100.13'),
    nl.deleteRoute({ family: 4, dst: '198.18.59.0/24', protocol: 86, table: 254 }),
    via('198.18.54.0/24', '198.51.100.12'),
  ]);
  nl.close();
  const codes = outcomes.map((o) =>
    o.status === 'fulfilled' ? 'ok' : (o.reason as { cause?: { code?: string } }).cause?.code,
  );
  process.stdout.write(`${JSON.stringify({ type: 'batch', codes })}\n`);
  process.exit(0);
}

const [node, iface, clusterCidr, subnetEnvPath] = process.argv.slice(2);
if (node === undefined || iface === undefined || clusterCidr === undefined || subnetEnvPath === undefined) {
  process.stderr.write('usage: hostgw-fixture <node> <iface> <cluster-cidr> <subnet.env>\n');
  process.exit(2);
}

const out = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);
const summary = (r: ReconcileResult) => ({
  type: 'result',
  replaced: r.replaced,
  deleted: r.deleted,
  unchanged: r.unchanged,
  refused: r.refused.map((x) => ({ node: x.node, code: x.error.code, message: x.error.message })),
  errors: r.errors.map((e) => e.message),
});

const hg = createHostGw({
  nodeName: node,
  flannelIface: iface,
  clusterCidr: clusterCidr.split(','),
  subnetEnvPath,
  logger: createLogger({ level: process.env['VIPMESH_LOG_LEVEL'] ?? 'warn', destination: 2, pretty: false }),
});

let shuttingDown = false;
async function shutdown(code: number): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  await hg.close();
  process.exit(code);
}
process.on('SIGTERM', () => void shutdown(0));

const info = await hg.start();
hg.reconciler.on('refused', (r) =>
  out({ type: 'refused', node: r.node, code: r.error.code, message: r.error.message }),
);
hg.reconciler.on('restoring', (dst) => out({ type: 'restoring', dst, at: Date.now() }));
hg.reconciler.on('synced', (r) => out({ type: 'pass', full: r.full, replaced: r.replaced }));
out({ type: 'ready', ...info });

const lines = createInterface({ input: process.stdin });
// Commands run one at a time, in order.
let chain = Promise.resolve();
lines.on('line', (line) => {
  chain = chain.then(async () => {
    try {
      const cmd = JSON.parse(line) as Lease[] | 'resync';
      const result = cmd === 'resync' ? await hg.reconciler.resync() : await hg.setLeases(cmd);
      out(summary(result));
    } catch (err) {
      out({ type: 'error', code: (err as { code?: string }).code, message: (err as Error).message });
    }
  });
});
lines.on('close', () => void chain.then(() => shutdown(0)));
