/**
 * The agent's public entry: what `vipmesh agent` needs and nothing of the server (datastore, etcd client,
 * API, controllers). It is kept apart from src/server on purpose: the agent's RSS goal is 60 MB, and loading
 * the server's modules as well would add tens of MB.
 */
export { serveMetrics } from '../daemon/metrics-http.js';
export { registerProcessMetrics } from '../daemon/process-metrics.js';
export { Agent, type AgentAnnouncer, type AgentHostGw } from './agent.js';
export { createAgent } from './wire.js';
