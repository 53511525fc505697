import type { ConfigMap, IPAddressPool, KubeObject, L2Advertisement } from '../api/types.js';
import type { Logger } from '../log.js';
import {
  type AddressPool,
  type AdvertisementRule,
  fromLegacyConfigMap,
  isLegacyMetallbConfig,
  toAddressPool,
  toL2Advertisement,
} from '../vip-pool/index.js';

/** The address pools (IPAddressPools plus legacy MetalLB ConfigMaps) and L2Advertisements now stored. */
interface PoolConfig {
  pools: AddressPool[];
  advertisements: AdvertisementRule[];
}

/**
 * Decode what is stored into vip-pool's normalized pools and advertisements. Objects that fail to decode
 * (the API validates on write, so only objects from another tool) are skipped with a warning. A legacy
 * ConfigMap's layer 2 pools without any L2Advertisement are announced everywhere, as MetalLB did.
 */
export function poolConfig(
  pools: Iterable<IPAddressPool>,
  configMaps: Iterable<ConfigMap>,
  advertisements: Iterable<L2Advertisement>,
  log: Logger,
): PoolConfig {
  const out: PoolConfig = { pools: [], advertisements: [] };
  const legacy: string[] = [];
  for (const p of sortByName(pools)) {
    try {
      out.pools.push(toAddressPool(p));
    } catch (err) {
      log.warn({ pool: p.metadata.name, err }, 'skipping an invalid IPAddressPool');
    }
  }
  for (const cm of sortByName(configMaps)) {
    if (!isLegacyMetallbConfig(cm)) continue;
    try {
      const list = fromLegacyConfigMap(cm);
      out.pools.push(...list);
      legacy.push(...list.map((p) => p.name));
    } catch (err) {
      log.warn({ configmap: cm.metadata.name, err }, 'skipping an invalid MetalLB ConfigMap');
    }
  }
  for (const a of sortByName(advertisements)) {
    try {
      out.advertisements.push(toL2Advertisement(a));
    } catch (err) {
      log.warn({ advertisement: a.metadata.name, err }, 'skipping an invalid L2Advertisement');
    }
  }
  if (legacy.length > 0) {
    out.advertisements.push({
      name: 'legacy-configmap',
      ipAddressPools: legacy,
      ipAddressPoolSelectors: [],
      nodeSelectors: [],
      interfaces: [],
    });
  }
  return out;
}

function sortByName<T extends KubeObject>(items: Iterable<T>): T[] {
  return [...items].sort((a, b) => {
    const ka = `${a.metadata.namespace ?? ''}/${a.metadata.name}`;
    const kb = `${b.metadata.namespace ?? ''}/${b.metadata.name}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
}
