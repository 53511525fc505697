/**
 * The backends of every Service, merged from its Endpoints object and all its EndpointSlices, with each
 * backend's node filled in when the object does not say: the node whose pod subnet holds the address (the
 * host-gw lease, as the Node's `spec.podCIDRs`), or the node that has the address itself (a process on a
 * node). Kept current from the informers; `change` names the Services whose backends changed.
 */
import { EventEmitter } from 'node:events';
import type { LbEndpoint, LbService } from '../api/agent-protocol.js';
import { type NodePlaces, placesOf, withNodes } from '../api/backend-nodes.js';
import type { EndpointSlice, Endpoints, Service } from '../api/types.js';
import { formatCidr } from '../util/cidr.js';
import { type BackendSet, backendSetOf, lbSettingsOf, mergeBackends, serviceKey } from '../vip-pool/index.js';
import type { Informer } from './informer.js';

/** Events of a {@link BackendIndex}. */
interface BackendIndexEvents {
  /** The backends of the Service `namespace/name` changed. */
  change: [key: string];
}

/** The informers a {@link BackendIndex} reads. */
export interface BackendInformers {
  endpoints: Informer<'endpoints'>;
  endpointslices: Informer<'endpointslices'>;
  nodes: Informer<'nodes'>;
}

/** Merged, node-resolved backends per Service, kept current from the informers. */
export class BackendIndex extends EventEmitter<BackendIndexEvents> {
  readonly #i: BackendInformers;
  /** Object (`Kind/namespace/name`) -> the set it gives. */
  readonly #sets = new Map<string, BackendSet>();
  /** Service key -> the objects that give it backends. */
  readonly #byService = new Map<string, Set<string>>();
  /** Service key -> its merged backends (computed on demand, dropped on change). */
  readonly #merged = new Map<string, LbEndpoint[]>();
  #places: NodePlaces = { subnets: [], addresses: new Map() };
  #placesText = '';

  constructor(informers: BackendInformers) {
    super();
    this.#i = informers;
  }

  /** Index what the informers hold and follow their changes (the informers must be started). */
  start(): void {
    this.#onNodes();
    for (const o of this.#i.endpoints.items.values()) this.#set('Endpoints', o);
    for (const o of this.#i.endpointslices.items.values()) this.#set('EndpointSlice', o);
    this.#i.endpoints.on('change', this.#onEndpoints);
    this.#i.endpointslices.on('change', this.#onSlices);
    this.#i.nodes.on('change', this.#onNodes);
  }

  close(): void {
    this.#i.endpoints.off('change', this.#onEndpoints);
    this.#i.endpointslices.off('change', this.#onSlices);
    this.#i.nodes.off('change', this.#onNodes);
  }

  /** The Service `namespace/name`'s backends, one per address, sorted by address (empty: none). */
  backends(key: string): LbEndpoint[] {
    let m = this.#merged.get(key);
    if (m !== undefined) return m;
    const sets = [...(this.#byService.get(key) ?? [])].map((k) => this.#sets.get(k)!);
    m = withNodes(mergeBackends(sets), this.#places);
    this.#merged.set(key, m);
    return m;
  }

  /** The Services that have backends. */
  services(): IterableIterator<string> {
    return this.#byService.keys();
  }

  readonly #onEndpoints = (e: { type: string; object: Endpoints }): void => {
    if (e.type === 'DELETED') this.#delete('Endpoints', e.object);
    else this.#set('Endpoints', e.object);
  };

  readonly #onSlices = (e: { type: string; object: EndpointSlice }): void => {
    if (e.type === 'DELETED') this.#delete('EndpointSlice', e.object);
    else this.#set('EndpointSlice', e.object);
  };

  /** Node addresses or pod subnets changed: backends without a node name may be elsewhere now. */
  readonly #onNodes = (): void => {
    const places = placesOf(this.#i.nodes.items.values());
    const text = JSON.stringify([
      places.subnets.map((s) => [s.node, formatCidr(s.net)]),
      [...places.addresses],
    ]);
    if (text === this.#placesText) return;
    this.#placesText = text;
    this.#places = places;
    for (const [key, objs] of this.#byService) {
      const unnamed = [...objs].some((k) =>
        this.#sets.get(k)!.backends.some((b) => b.nodeName === undefined),
      );
      if (unnamed) this.#changed(key);
    }
  };

  #set(kind: string, obj: Endpoints | EndpointSlice): void {
    const objKey = `${kind}/${obj.metadata.namespace ?? 'default'}/${obj.metadata.name}`;
    const set = backendSetOf(obj);
    const old = this.#sets.get(objKey);
    if (old !== undefined) this.#unlink(objKey, old);
    if (set === undefined || set.service === '') {
      this.#sets.delete(objKey);
      return;
    }
    this.#sets.set(objKey, set);
    const key = serviceKey({ namespace: set.namespace, name: set.service });
    const keys = this.#byService.get(key) ?? new Set<string>();
    this.#byService.set(key, keys);
    keys.add(objKey);
    this.#changed(key);
  }

  #delete(kind: string, obj: Endpoints | EndpointSlice): void {
    const objKey = `${kind}/${obj.metadata.namespace ?? 'default'}/${obj.metadata.name}`;
    const old = this.#sets.get(objKey);
    if (old === undefined) return;
    this.#sets.delete(objKey);
    this.#unlink(objKey, old);
  }

  #unlink(objKey: string, set: BackendSet): void {
    const key = serviceKey({ namespace: set.namespace, name: set.service });
    const keys = this.#byService.get(key);
    keys?.delete(objKey);
    if (keys?.size === 0) this.#byService.delete(key);
    this.#changed(key);
  }

  #changed(key: string): void {
    this.#merged.delete(key);
    this.emit('change', key);
  }
}

/**
 * What the holder of `vips` serves for `svc` with `endpoints`, or undefined for a Service that is not a
 * LoadBalancer of vipmesh's.
 */
export function lbServiceOf(svc: Service, vips: string[], endpoints: LbEndpoint[]): LbService | undefined {
  const lb = lbSettingsOf(svc);
  if (lb === undefined) return undefined;
  return {
    namespace: svc.metadata.namespace ?? 'default',
    name: svc.metadata.name,
    vips,
    ports: lb.ports,
    endpoints,
    externalTrafficPolicy: lb.externalTrafficPolicy,
    sessionAffinity: lb.sessionAffinity,
    affinityTimeoutSeconds: lb.affinityTimeoutSeconds,
    algorithm: lb.algorithm,
    healthCheck: lb.healthCheck,
  };
}
