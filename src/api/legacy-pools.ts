/**
 * The address pools of MetalLB's legacy `config` ConfigMap, shown as the IPAddressPools they stand for, so
 * `vipmesh get ipaddresspools` lists every pool the allocator uses. These objects are made for display:
 * they are never stored, and the API's own lists (what kubectl reads) do not include them.
 */
import { fromLegacyConfigMap, isLegacyMetallbConfig } from '../vip-pool/index.js';
import type { ConfigMap, IPAddressPool, KubeObject } from './types.js';

/** The annotation that marks a pool read from a legacy ConfigMap: `ConfigMap <namespace>/<name>`. */
export const POOL_SOURCE_ANNOTATION = 'vipmesh.io/source';

/**
 * The pools of every legacy MetalLB ConfigMap in `configMaps`, as IPAddressPool objects in the ConfigMap's
 * namespace, annotated with {@link POOL_SOURCE_ANNOTATION}. A ConfigMap that does not decode is left out,
 * as the allocator leaves it out.
 */
export function legacyPoolObjects(configMaps: Iterable<ConfigMap>): IPAddressPool[] {
  const out: IPAddressPool[] = [];
  for (const cm of configMaps) {
    if (!isLegacyMetallbConfig(cm)) continue;
    let pools: ReturnType<typeof fromLegacyConfigMap>;
    try {
      pools = fromLegacyConfigMap(cm);
    } catch {
      continue;
    }
    const namespace = cm.metadata.namespace ?? 'default';
    for (const p of pools) {
      out.push({
        apiVersion: 'metallb.io/v1beta1',
        kind: 'IPAddressPool',
        metadata: {
          name: p.name,
          namespace,
          annotations: { [POOL_SOURCE_ANNOTATION]: `ConfigMap ${namespace}/${cm.metadata.name}` },
          ...(cm.metadata.creationTimestamp === undefined
            ? {}
            : { creationTimestamp: cm.metadata.creationTimestamp }),
        },
        spec: { addresses: p.addresses, autoAssign: p.autoAssign, avoidBuggyIPs: p.avoidBuggyIPs },
      });
    }
  }
  return out;
}

/** Where a pool comes from, for the SOURCE column: its ConfigMap, or `IPAddressPool` for a stored one. */
export function poolSource(o: KubeObject): string {
  return o.metadata.annotations?.[POOL_SOURCE_ANNOTATION] ?? 'IPAddressPool';
}
