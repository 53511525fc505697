/**
 * The daemons: `startServer()` (datastore, credentials, HTTPS API + tunnel, election, controllers,
 * metrics) and the agent (`Agent`, wired for production by `createAgent()`).
 */
export {
  Agent,
  type AgentAnnouncer,
  type AgentHostGw,
  type AgentOptions,
  localRegistration,
} from '../agent/agent.js';
export { type CreateAgentOptions, createAgent } from '../agent/wire.js';
export { type MetricsServer, serveMetrics, splitHostPort } from '../daemon/metrics-http.js';
export { registerProcessMetrics } from '../daemon/process-metrics.js';
export { BOOTSTRAP_KEY, sharedCredentials } from './bootstrap.js';
export { ELECTION_NAME, MasterElection, type MasterElectionOptions, SERVERS_PREFIX } from './election.js';
export { type PushTarget, Relay, type RelayOptions, TOPIC_LEASES, TOPIC_VIPS } from './relay.js';
export { type RunningServer, type ServerOptions, startServer } from './server.js';
