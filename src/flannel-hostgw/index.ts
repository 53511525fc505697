/**
 * host-gw pod networking: every node owns a pod subnet out of the cluster CIDR, and every node routes
 * each other node's subnet via that node's IP on the shared L2 (flannel's host-gw backend).
 */
export { DEFAULT_CLUSTER_CIDR, SubnetAllocator } from './allocator.js';
export { createHostGw, resolveFlannelIface } from './hostgw.js';
export { decodeLease, encodeLeaseValue, LEASE_PREFIX, type Lease, leaseKey } from './lease.js';
export { createRouteNetlink } from './netlink.js';
export type { Refusal } from './plan.js';
export { type ReconcileResult, RouteReconciler, VIPMESH_RT_PROTOCOL } from './reconciler.js';
export { DEFAULT_SUBNET_ENV_PATH, parseSubnetEnv } from './subnet-env.js';
