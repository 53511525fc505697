import { randomBytes } from 'node:crypto';
import type { Logger } from '../../log.js';
import {
  type AddressPool,
  fromLegacyConfigMap,
  type L2Advertisement,
  toAddressPool,
  toL2Advertisement,
} from '../../vip-pool/index.js';
import type { ResourceStore } from '../store.js';
import type { ConfigMap, Event, IPAddressPool, KubeObject, L2Advertisement as L2Object } from '../types.js';

/** The address pools (IPAddressPools plus legacy MetalLB ConfigMaps) and L2Advertisements now stored. */
export interface PoolConfig {
  pools: AddressPool[];
  advertisements: L2Advertisement[];
}

/** A legacy MetalLB ConfigMap: one with a `config` key holding `address-pools:`. */
function isLegacyConfig(cm: ConfigMap): boolean {
  return typeof cm.data?.['config'] === 'string' && cm.data['config'].includes('address-pools');
}

/**
 * Decode what is stored into vip-pool's normalized pools and advertisements. Objects that fail to decode
 * (the API validates on write, so only objects from another tool) are skipped with a warning. A legacy
 * ConfigMap's layer 2 pools without any L2Advertisement are announced everywhere, as MetalLB did.
 */
export function poolConfig(
  pools: Iterable<IPAddressPool>,
  configMaps: Iterable<ConfigMap>,
  advertisements: Iterable<L2Object>,
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
    if (!isLegacyConfig(cm)) continue;
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

/** What {@link recordEvent} writes. */
export interface EventInput {
  involved: KubeObject;
  reason: string;
  message: string;
  type: 'Normal' | 'Warning';
  component: string;
  host?: string;
  now: number;
}

/**
 * Write a core/v1 Event about `involved` (shown by `vipmesh describe`). Failing to record an event is
 * logged, never thrown: events are history, not state.
 */
export async function recordEvent(store: ResourceStore, e: EventInput, log: Logger): Promise<void> {
  const ts = new Date(e.now).toISOString().replace(/\.\d+Z$/, 'Z');
  const ns = e.involved.metadata.namespace ?? 'default';
  const event: Event = {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: {
      name: `${e.involved.metadata.name}.${randomBytes(6).toString('hex')}`,
      namespace: ns,
    },
    involvedObject: {
      kind: e.involved.kind,
      name: e.involved.metadata.name,
      ...(e.involved.metadata.namespace === undefined ? {} : { namespace: e.involved.metadata.namespace }),
      ...(e.involved.metadata.uid === undefined ? {} : { uid: e.involved.metadata.uid }),
    },
    reason: e.reason,
    message: e.message,
    type: e.type,
    count: 1,
    firstTimestamp: ts,
    lastTimestamp: ts,
    source: { component: e.component, ...(e.host === undefined ? {} : { host: e.host }) },
  };
  try {
    await store.create('events', event);
  } catch (err) {
    log.warn({ err, reason: e.reason }, 'could not record an event');
  }
}
