/**
 * Test fixture: a stand-in server for the load balancer's netns tests. A tunnel server that pushes each
 * node what the test writes on stdin (JSON lines `{"topic": ..., "payload": ...}`; the last payload of
 * each topic is pushed again to a node that (re)connects), and prints one JSON line per event on stdout:
 * `listening` (with the join token), `session` (node), `health` (the node's HealthReport). Exits on SIGTERM.
 *
 *   node --import tsx test/lb-fixtures/server.ts --data-dir DIR [--host H] [--port P]
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { METHOD_HEALTH } from '../../src/api/agent-protocol.js';
import { createTunnelServer } from '../../src/testing/tunnel-server.js';

const { values } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '6443' },
  },
});
const say = (event: string, fields: Record<string, unknown> = {}) =>
  process.stdout.write(`${JSON.stringify({ event, at: Date.now(), ...fields })}\n`);

const srv = await createTunnelServer({
  dataDir: values['data-dir']!,
  host: values.host,
  port: Number(values.port),
  heartbeatMs: 100,
  sans: [values.host!],
});
const last = new Map<string, unknown>();
srv.tunnel.on('node-seen', ({ node }) => {
  say('session', { node });
  for (const [topic, payload] of last) srv.tunnel.push(node, topic, payload);
});
srv.tunnel.onRequest(METHOD_HEALTH, (params: unknown) => {
  say('health', { report: params });
  return {};
});
createInterface({ input: process.stdin }).on('line', (line) => {
  const { topic, payload } = JSON.parse(line) as { topic: string; payload: unknown };
  last.set(topic, payload);
  for (const node of srv.tunnel.sessions.keys()) srv.tunnel.push(node, topic, payload);
});
say('listening', { port: srv.port, token: srv.credentials.joinToken });
process.once('SIGTERM', () => {
  void srv.close().then(() => process.exit(0));
});
