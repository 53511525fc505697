/**
 * The L4 load balancer of the VIP holder: Services rendered to one nftables table of vipmesh's own,
 * applied atomically with `nft`, endpoints health-checked, UDP flows to lost endpoints reset. Public
 * surface of src/lb; it imports only the base and src/util.
 */
export { type CommandResult, type RunCommand, runCommand } from './command.js';
export { ConntrackCleaner, type StaleFlow } from './conntrack.js';
export { HealthChecker, type HealthCheckerOptions, type HealthState } from './health.js';
export { type ApplyResult, NftTable, type NftTableOptions } from './nft.js';
export { NftSession, type NftSessionOptions, type SpawnProcess, spawnProcess } from './nft-session.js';
export { httpProbe, type Probe, type ProbeTarget, probeFor, tcpProbe } from './probes.js';
export {
  backendsOf,
  emptyRuleset,
  type RenderInput,
  type RenderResult,
  type Ruleset,
  render,
  targetPortOf,
} from './render.js';
export { deleteScript, diffScript, fullScript, TABLE } from './script.js';
export * from './types.js';
export { validateService } from './validate.js';
