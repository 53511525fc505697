/**
 * Issue 7 end to end on the embedded datastore: `vipmesh server` and two `vipmesh agent` processes in
 * network namespaces, a client namespace, real ARP/NDP, real routes (scenarios in cluster-suite.ts).
 */
import t from 'tap';
import { runScenarios, SRV_URL, startCluster } from './cluster-suite.js';
import { canUseNetns } from './lab.js';

const skip = canUseNetns() ? false : 'needs root and the ip tool (network namespaces)';

t.test('cluster on the embedded datastore', { skip }, async (t) => {
  const k = await startCluster(t, { serverFlags: [], servers: [SRV_URL] });
  await k.startServer();
  await Promise.all([k.startAgent('a1'), k.startAgent('a2')]);
  await runScenarios(t, k);
});
