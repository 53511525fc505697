import type { Registry } from 'prom-client';
import type { Clock } from '../clock.js';
import { poolConflicts, validateObject } from '../vip-pool/index.js';
import { createEtcdKv, type EtcdKvOptions, type EtcdTuning } from './etcd-kv.js';
import type { Validator } from './status.js';
import { ResourceStore } from './store.js';

/** Options for {@link createResourceStore}. */
interface CreateResourceStoreOptions {
  /** The datastore's etcd v3 endpoints: the embedded one (src/kine) or `--datastore-endpoint`. */
  endpoints: EtcdKvOptions['endpoints'];
  /** Extra `etcd3` client options (TLS, auth). */
  client?: EtcdKvOptions['client'];
  /** Object validation; default vip-pool's `validateObject` (the same as `vipmesh check-config`). */
  validate?: Validator;
  /** Datastore client tuning (list page size, largest answer); default the production values. */
  tuning?: EtcdTuning;
  registry?: Registry;
  clock?: Clock;
}

/** The production stack: a {@link ResourceStore} on an etcd v3 datastore through the `etcd3` client. */
export function createResourceStore(opts: CreateResourceStoreOptions): ResourceStore {
  const kv = createEtcdKv({
    endpoints: opts.endpoints,
    ...opts.tuning,
    ...(opts.client === undefined ? {} : { client: opts.client }),
  });
  return new ResourceStore({
    kv,
    validate: opts.validate ?? validateObject,
    validateSet: poolConflicts,
    ...(opts.registry === undefined ? {} : { registry: opts.registry }),
    ...(opts.clock === undefined ? {} : { clock: opts.clock }),
  });
}
