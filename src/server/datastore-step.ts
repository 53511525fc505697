import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { EtcdKv } from '../api/etcd-kv.js';
import type { Kv } from '../api/kv.js';
import { ResourceStore } from '../api/store.js';
import { type Datastore, startDatastore } from '../kine/index.js';
import { ensureServerCredentials, type ServerCredentials } from '../pki/index.js';
import { validateObject } from '../vip-pool/index.js';
import { sharedCredentials } from './bootstrap.js';
import { clockOf, type ServerStep } from './server-options.js';

/** Where the server's state lives: the embedded datastore (if any) and the client endpoints. */
interface DatastoreEndpoints {
  /** The embedded datastore; undefined with `datastoreEndpoint`. */
  embedded: Datastore | undefined;
  /** Comma-separated client URLs. */
  endpoints: string;
}

/** Step: the external datastore named by `datastoreEndpoint`, else the embedded one under the data dir. */
export async function openDatastore({ o, registry, stack }: ServerStep): Promise<DatastoreEndpoints> {
  if (o.datastoreEndpoint !== undefined && o.datastoreEndpoint !== '') {
    return { embedded: undefined, endpoints: o.datastoreEndpoint };
  }
  const ds = await startDatastore({
    dataDir: join(o.dataDir, 'server', 'db'),
    listenAddress: '127.0.0.1:0',
    logger: o.logger.child({ module: 'kine' }),
    registry,
    ...clockOf(o),
  });
  stack.push('datastore', () => ds.close());
  return { embedded: ds, endpoints: ds.url };
}

/** The datastore as the server uses it. */
interface DatastoreClient {
  /** One etcd client (one gRPC channel) for the store, the raw keys and the election. */
  etcd: Etcd3;
  /** Raw keys over `etcd` (closing it is a no-op: the etcd step owns the channel). */
  kv: Kv;
  store: ResourceStore;
}

/** Step: the etcd client on `endpoints`, the raw KV over it and the resource store. */
export function openClient({ o, registry, stack }: ServerStep, endpoints: string): DatastoreClient {
  const hosts = endpoints
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  const etcd = new Etcd3({ hosts });
  stack.push('etcd', () => etcd.close());
  const kv = sharedKv(new EtcdKv(etcd));
  const store = new ResourceStore({ kv, validate: validateObject, registry, ...clockOf(o) });
  stack.push('store', () => store.close());
  return { etcd, kv, store };
}

/**
 * Step: the CA, serving certificate and tokens. With the embedded datastore they live in the data dir;
 * servers sharing an external datastore share them through it.
 */
export function loadCredentials(
  { o }: ServerStep,
  kv: Kv,
  data: DatastoreEndpoints,
): Promise<ServerCredentials> {
  const sans = [...(o.nodeIps ?? []), o.nodeName];
  return data.embedded === undefined
    ? sharedCredentials(kv, o.dataDir, sans)
    : ensureServerCredentials(o.dataDir, { sans });
}

/** `inner` with a no-op close(): several users share one client, closed once by its owner. */
function sharedKv(inner: Kv): Kv {
  return {
    get: (key) => inner.get(key),
    list: (prefix) => inner.list(prefix),
    put: (key, value, expect) => inner.put(key, value, expect),
    delete: (key, expect) => inner.delete(key, expect),
    watch: (prefix, from, handlers) => inner.watch(prefix, from, handlers),
    revision: () => inner.revision(),
    close: async () => undefined,
  };
}
