/**
 * Address pools, the accepted YAML formats and the VIP allocator. Pure code: no I/O, no timers.
 * The control plane calls {@link parseDocuments}/{@link validateObject} on what users apply, keeps an
 * {@link Allocator} per pool generation, and uses the L2 helpers to pick announcing nodes.
 */
export {
  type Allocation,
  Allocator,
  type AllocatorOptions,
  type Assignment,
  type RejectedAllocation,
} from './allocator.js';
export {
  type CheckInput,
  type CheckReport,
  checkConfig,
  type ReportFormat,
  type ReportPool,
  type ReportService,
  renderReport,
} from './check.js';
export { type NameRule, nameProblem, nameRuleOf } from './checker.js';
export { Codes, type PoolErrorCode } from './codes.js';
export {
  ACCEPTED_KINDS,
  type Decoded,
  fromLegacyConfigMap,
  poolConflicts,
  toAddressPool,
  toL2Advertisement,
  toServiceRequest,
  validateObject,
} from './decode.js';
export {
  advertisedPools,
  advertisementCovers,
  advertisementsFor,
  announcersFor,
  type EligibleNode,
  type NodeInfo,
  nodeSelected,
} from './l2.js';
export { checkPools, formatProblem, type ParsedObject, parseDocuments } from './parse.js';
export { type PoolSetProblem, poolSetProblems, poolSize } from './pools.js';
export { checkFields, SCHEMAS, type Schema } from './schema.js';
export { selectorMatches } from './selector.js';
export {
  type AddressPool,
  type AdvertisementRule,
  type ConfigProblem,
  type IpFamilyPolicy,
  type LabelSelector,
  type NamespaceInfo,
  type ProtocolPort,
  type ServiceAllocation,
  type ServiceRequest,
  serviceKey,
} from './types.js';
