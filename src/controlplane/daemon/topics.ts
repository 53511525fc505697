/** Push topic: the VIPs a node must announce (`{ vips: VipAssignment[] }`). */
export const TOPIC_VIPS = 'vipmesh/vips';
/** Push topic: every node's subnet lease (`{ clusterCidr: string[], leases: Lease[] }`). */
export const TOPIC_LEASES = 'vipmesh/leases';
