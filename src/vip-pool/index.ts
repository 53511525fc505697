/**
 * Address pools, the accepted YAML formats and the VIP allocator. Pure code: no I/O, no timers.
 * The control plane calls {@link parseDocuments}/{@link validateObject} on what users apply, keeps an
 * {@link Allocator} per pool generation, and uses the L2 helpers to pick announcing nodes.
 */
export { type Allocation, Allocator, type Assignment } from './allocator.js';
export { type CheckInput, checkConfig, type ReportFormat, renderReport } from './check.js';
export { nameProblem, nameRuleOf } from './checker.js';
export { Codes } from './codes.js';
export {
  backendSetOf,
  fromLegacyConfigMap,
  lbSettingsOf,
  poolConflicts,
  toAddressPool,
  toL2Advertisement,
  toServiceRequest,
  validateObject,
} from './decode.js';
export { mergeBackends, SERVICE_NAME_LABEL, targetPortOf } from './decode-endpoints.js';
export { DEFAULT_HEALTH_CHECK, LB_ANNOTATIONS } from './decode-lb.js';
export { isLegacyMetallbConfig } from './decode-pool.js';
export { announcersFor, type NodeInfo } from './l2.js';
export { type Leaf, SCHEMAS, type Schema } from './schema.js';
export {
  type AddressPool,
  type AdvertisementRule,
  type Backend,
  type BackendSet,
  type ConfigProblem,
  type HealthCheckSettings,
  type LbPortSpec,
  type LbSettings,
  type ServiceRequest,
  serviceKey,
} from './types.js';
