/**
 * host-gw pod networking: every node owns a pod subnet out of the cluster CIDR, and every node routes
 * each other node's subnet via that node's IP on the shared L2 (flannel's host-gw backend).
 */
export {
  type AllocatorState,
  DEFAULT_CLUSTER_CIDR,
  type ReleasedSubnet,
  SubnetAllocator,
  type SubnetAllocatorOptions,
} from './allocator.js';
export {
  createHostGw,
  type HostGw,
  type HostGwInfo,
  type HostGwOptions,
  resolveFlannelIface,
} from './hostgw.js';
export {
  checkLease,
  decodeLease,
  encodeLeaseValue,
  type FlannelLeaseValue,
  LEASE_PREFIX,
  type Lease,
  leaseKey,
  parseLeaseKey,
} from './lease.js';
export {
  createRouteNetlink,
  type IfaceAddress,
  type IfaceLink,
  type KernelRoute,
  type NetlinkEvent,
  type RouteNetlink,
  type RouteNetlinkOptions,
  type RouteSpec,
} from './netlink.js';
export { type Plan, planRoutes, type Refusal } from './plan.js';
export {
  type ReconcileResult,
  RouteReconciler,
  type RouteReconcilerEvents,
  type RouteReconcilerOptions,
  VIPMESH_RT_PROTOCOL,
} from './reconciler.js';
export {
  DEFAULT_SUBNET_ENV_PATH,
  formatSubnetEnv,
  parseSubnetEnv,
  type SubnetEnv,
  writeSubnetEnv,
} from './subnet-env.js';
