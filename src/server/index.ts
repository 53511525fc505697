/**
 * The server daemon: `startServer()` (datastore, credentials, HTTPS API + tunnel, election, controllers,
 * relay to the agents, metrics). The node agent it can run beside it is in src/agent.
 */
export { BOOTSTRAP_KEY, sharedCredentials } from './bootstrap.js';
export {
  type ConnectionLimitOptions,
  ConnectionLimits,
  connectionLimitDefaults,
  openFileLimit,
} from './connection-limits.js';
export { ELECTION_NAME, MasterElection, type MasterElectionOptions, SERVERS_PREFIX } from './election.js';
export { type PushTarget, Relay, type RelayOptions, TOPIC_LEASES, TOPIC_VIPS } from './relay.js';
export { type RunningServer, type ServerOptions, startServer } from './server.js';
