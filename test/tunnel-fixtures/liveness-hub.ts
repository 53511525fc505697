/**
 * One side of a liveness session in a process of its own, for tests that freeze it (SIGSTOP) as a stall of
 * the whole host would. `serve`: a server hub on 127.0.0.1, prints `grant <json>` for a session judged with
 * `--dead`; `call <grant json>`: an agent hub pinging as the grant says. Each prints `armed` and `lost <ms>`.
 *
 *   node --import tsx test/tunnel-fixtures/liveness-hub.ts serve --dead 150 --interval 50
 *   node --import tsx test/tunnel-fixtures/liveness-hub.ts call '<grant>'
 */
import { LivenessHub, type LivenessPeer } from '../../src/tunnel/liveness.js';

const [role, arg] = process.argv.slice(2);
const flag = (name: string) => Number(process.argv[process.argv.indexOf(name) + 1]);
const peer: LivenessPeer = {
  armed: () => console.log('armed'),
  lost: (ms) => console.log(`lost ${ms.toFixed(1)}`),
};
if (role === 'serve') {
  const hub = await LivenessHub.listen('127.0.0.1', 0);
  const link = hub.expect({ intervalMs: flag('--interval'), deadAfterMs: flag('--dead') }, peer);
  console.log(`grant ${JSON.stringify(link.grant)}`);
} else {
  LivenessHub.start().call('127.0.0.1', JSON.parse(arg!), peer);
}
// Until the test closes stdin.
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
