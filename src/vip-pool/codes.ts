/**
 * The stable error codes of the address-pool module (listed in docs/errors.md, "Address pools and
 * Services"). Problems found in YAML and errors thrown by the allocator use these; tests assert them.
 */
export const Codes = {
  /** The text is not YAML, or a document is not a map. */
  YAML_INVALID: 'VIPMESH_YAML_INVALID',
  /** apiVersion/kind is not one vipmesh accepts. */
  UNSUPPORTED_KIND: 'VIPMESH_UNSUPPORTED_KIND',
  /** A required field is missing. */
  FIELD_REQUIRED: 'VIPMESH_FIELD_REQUIRED',
  /** A field has the wrong type or an invalid value. */
  FIELD_INVALID: 'VIPMESH_FIELD_INVALID',
  /** A field that the format does not have (usually a typo). */
  FIELD_UNKNOWN: 'VIPMESH_FIELD_UNKNOWN',
  /** Not an IP address, CIDR or range. */
  BAD_ADDRESS: 'VIPMESH_BAD_ADDRESS',
  /** A range whose start is after its end. */
  RANGE_REVERSED: 'VIPMESH_RANGE_REVERSED',
  /** A range with an IPv4 and an IPv6 end. */
  RANGE_MIXED_FAMILY: 'VIPMESH_RANGE_MIXED_FAMILY',
  /** Two pools (or two entries of one pool) share addresses. */
  POOL_OVERLAP: 'VIPMESH_POOL_OVERLAP',
  /** Two pools with one name. */
  POOL_DUPLICATE: 'VIPMESH_POOL_DUPLICATE',
  /** A legacy ConfigMap pool with `protocol: bgp` (or BGP peers). */
  BGP_UNSUPPORTED: 'VIPMESH_BGP_UNSUPPORTED',
  /** Both spec.loadBalancerIP and the loadBalancerIPs annotation are set. */
  LBIP_CONFLICT: 'VIPMESH_LBIP_CONFLICT',
  /** The loadBalancerIPs annotation has two addresses of one family. */
  LBIPS_FAMILY: 'VIPMESH_LBIPS_FAMILY',
  /** Requested addresses do not agree with ipFamilies/ipFamilyPolicy. */
  FAMILY_MISMATCH: 'VIPMESH_FAMILY_MISMATCH',
  /** A Service whose spec.type is not LoadBalancer. */
  SERVICE_NOT_LOADBALANCER: 'VIPMESH_SERVICE_NOT_LOADBALANCER',
  /** A requested address is in no pool. */
  IP_OUTSIDE_POOLS: 'VIPMESH_IP_OUTSIDE_POOLS',
  /** A requested address is in another pool than the requested pool. */
  IP_WRONG_POOL: 'VIPMESH_IP_WRONG_POOL',
  /** The requested addresses (one per family) are in different pools. */
  IP_POOLS_DIFFER: 'VIPMESH_IP_POOLS_DIFFER',
  /** A requested .0/.255 address in an avoidBuggyIPs pool. */
  IP_AVOIDED: 'VIPMESH_IP_AVOIDED',
  /** A requested address is held by a Service that may not share it. */
  IP_IN_USE: 'VIPMESH_IP_IN_USE',
  /** The requested pool does not exist. */
  POOL_NOT_FOUND: 'VIPMESH_POOL_NOT_FOUND',
  /** The pool's serviceAllocation does not admit this Service. */
  POOL_NOT_ALLOWED: 'VIPMESH_POOL_NOT_ALLOWED',
  /** The pool has no free address of a family the Service needs. */
  POOL_EXHAUSTED: 'VIPMESH_POOL_EXHAUSTED',
  /** The pool has no range of a family the Service needs. */
  FAMILY_UNAVAILABLE: 'VIPMESH_FAMILY_UNAVAILABLE',
  /** No autoAssign pool serves this Service. */
  NO_POOL: 'VIPMESH_NO_POOL',
  /** The allocator's own bookkeeping is inconsistent (a bug). */
  ALLOCATOR_INCONSISTENT: 'VIPMESH_ALLOCATOR_INCONSISTENT',
  /** check-config could not read a file. */
  FILE_UNREADABLE: 'VIPMESH_FILE_UNREADABLE',
} as const;
