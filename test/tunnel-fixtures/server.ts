/**
 * Test fixture (there is no `vipmesh server` yet): a standalone tunnel server that prints one JSON line per
 * event on stdout: `listening` (with the join token), `node-seen`, `node-lost`. Each line carries `at`
 * (Date.now()) so a test in another process can time it. Exits on SIGTERM.
 *
 *   node --import tsx test/tunnel-fixtures/server.ts --data-dir DIR [--host H] [--port P] [--heartbeat MS]
 */
import { parseArgs } from 'node:util';
import { createTunnelServer } from '../../src/testing/tunnel-server.js';

const { values } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    host: { type: 'string', default: '0.0.0.0' },
    port: { type: 'string', default: '6443' },
    heartbeat: { type: 'string', default: '100' },
    allow: { type: 'string', multiple: true, default: [] },
  },
});
const say = (event: string, fields: Record<string, unknown> = {}) =>
  process.stdout.write(`${JSON.stringify({ event, at: Date.now(), ...fields })}\n`);

const srv = await createTunnelServer({
  dataDir: values['data-dir']!,
  host: values.host,
  port: Number(values.port),
  heartbeatMs: Number(values.heartbeat),
  sans: values.host === '0.0.0.0' ? [] : [values.host!],
  allow: values.allow,
});
srv.tunnel.on('node-seen', (e) => say('node-seen', { node: e.node, reconnect: e.reconnect }));
srv.tunnel.on('node-lost', (e) => say('node-lost', { node: e.node, reason: e.reason }));
srv.tunnel.onRequest('time', () => Date.now());
say('listening', { port: srv.port, token: srv.credentials.joinToken });
process.once('SIGTERM', () => {
  void srv.close().then(() => process.exit(0));
});
