/**
 * The agent's public entry: what `vipmesh agent` needs and nothing of the server (datastore, etcd client,
 * API, controllers). A second entry beside index.ts on purpose: the agent's RSS budget is 60 MB and the
 * server's modules cost tens of MB to load (measured with the compiled CLI; see the README).
 */
export { serveMetrics } from '../daemon/metrics-http.js';
export { registerProcessMetrics } from '../daemon/process-metrics.js';
export { Agent, type AgentAnnouncer, type AgentHostGw } from './agent.js';
export { createAgent } from './wire.js';
