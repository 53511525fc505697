/**
 * Test fixture (there is no `vipmesh agent` yet): a tunnel client that prints one JSON line per event on
 * stdout: `connected` (with `reconnect`), `disconnected` (with the reason), `failed`. Each line carries `at`
 * (Date.now()). Exits on SIGTERM.
 *
 *   node --import tsx test/tunnel-fixtures/agent.ts --server URL [--server URL2] --token T --node N
 *     --data-dir DIR [--port P]... [--heartbeat MS] [--no-liveness] [--stall MS]
 *
 * With `--stall MS`, SIGUSR2 blocks the main thread (not the process) for MS, as a long garbage
 * collection would, then prints `stalled` with the ms it was blocked.
 */
import { parseArgs } from 'node:util';
// The file, not src/arp's index: the index loads the announcer and rtnetlink too, 8 MiB of RSS that the
// tunnel bench would count against the agent.
import { LinkNeighbourProbe, serverTargets } from '../../src/arp/neighbour-probe.js';
import { systemClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { parseToken } from '../../src/pki/index.js';
import { TunnelClient } from '../../src/tunnel/index.js';

const { values } = parseArgs({
  options: {
    server: { type: 'string', multiple: true, default: [] },
    token: { type: 'string' },
    node: { type: 'string' },
    'data-dir': { type: 'string' },
    port: { type: 'string', multiple: true, default: [] },
    heartbeat: { type: 'string', default: '100' },
    window: { type: 'string' },
    'no-liveness': { type: 'boolean', default: false },
    stall: { type: 'string' },
  },
});
const say = (event: string, fields: Record<string, unknown> = {}) =>
  process.stdout.write(`${JSON.stringify({ event, at: Date.now(), ...fields })}\n`);

const client = new TunnelClient({
  servers: values.server,
  token: values.token!,
  caHash: parseToken(values.token!).caHash,
  node: values.node!,
  dataDir: values['data-dir']!,
  ports: values.port.map(Number),
  heartbeatMs: Number(values.heartbeat),
  // As src/agent/wire.ts wires it.
  neighbourProbe: new LinkNeighbourProbe({
    targets: () => serverTargets(values.server),
    clock: systemClock,
    logger: silentLogger(),
  }),
  ...(values.window === undefined ? {} : { windowBytes: Number(values.window) }),
  liveness: !values['no-liveness'],
});
if (values.stall !== undefined) {
  const ms = Number(values.stall);
  process.on('SIGUSR2', () => {
    const started = performance.now();
    // Blocks this thread only: the liveness worker runs on.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    say('stalled', { ms: Math.round(performance.now() - started) });
  });
}
client.on('connected', (e) => say('connected', { url: e.url, reconnect: e.reconnect }));
client.on('disconnected', (e) => say('disconnected', { reason: e.reason }));
client.on('failed', (e) => say('failed', { code: e.code, message: e.message }));
client.connect().catch(() => {});
// The client's timers are unref'd (they never keep a daemon alive on their own); this one does.
const keepAlive = setInterval(() => {}, 60_000);
process.once('SIGTERM', () => {
  clearInterval(keepAlive);
  void client.close().then(() => process.exit(0));
});
