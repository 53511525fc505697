import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { EtcdKv, etcdClientOptions } from '../api/etcd-kv.js';
import type { Kv } from '../api/kv.js';
import { ResourceStore } from '../api/store.js';
import { LOCAL_GRPC_OPTIONS, memberExists } from '../etcd-member/index.js';
import type { EtcdBackend } from '../kine/etcd-backend.js';
import { type Datastore, restrictDir, startDatastore } from '../kine/index.js';
import { ensureServerCredentials, type ServerCredentials } from '../pki/index.js';
import { poolConflicts, validateObject } from '../vip-pool/index.js';
import { sharedCredentials } from './bootstrap.js';
import { EmbeddedKv } from './embedded-kv.js';
import { type EmbeddedEtcd, startEmbeddedEtcd, wantsEmbeddedEtcd } from './etcd-step.js';
import { migrateSqlite, needsMigration } from './migrate-step.js';
import { clockOf, type ServerStep, servingSans } from './server-options.js';

/** Where the server's state lives: the embedded datastore (if any) and the client endpoints. */
interface DatastoreEndpoints {
  /** The embedded SQLite datastore; undefined with `datastoreEndpoint` or an etcd member. */
  embedded: Datastore | undefined;
  /** The embedded etcd member (`--cluster-init`, a join, or one in the data dir). */
  etcd?: EmbeddedEtcd;
  /** Comma-separated client URLs. */
  endpoints: string;
}

/** The embedded datastore's directory under the data dir. */
export function datastoreDir(dataDir: string): string {
  return join(dataDir, 'server', 'db');
}

/** Where the embedded datastore listens unless told otherwise: a unix socket in its 0700 directory. */
export function defaultDatastoreListen(dataDir: string): string {
  return `unix://${join(datastoreDir(dataDir), 'kine.sock')}`;
}

/**
 * Step: the external datastore named by `datastoreEndpoint`, else the embedded one under the data dir.
 * The data dir and `<data dir>/server` are made 0700 first (an existing install's modes are fixed and the
 * change logged); the embedded datastore serves on `<data dir>/server/db/kine.sock` (0600, in a 0700
 * directory), so only root reaches it, and opens no TCP port unless `datastoreListenAddress` asks for one.
 */
export async function openDatastore({ o, log, registry, stack }: ServerStep): Promise<DatastoreEndpoints> {
  restrictDir(o.dataDir, log);
  if (o.datastoreEndpoint !== undefined && o.datastoreEndpoint !== '') {
    return { embedded: undefined, endpoints: o.datastoreEndpoint };
  }
  restrictDir(join(o.dataDir, 'server'), log);
  if (wantsEmbeddedEtcd(o)) {
    const hadMember = memberExists(o.dataDir);
    const etcd = await startEmbeddedEtcd({ o, log, registry, stack });
    const dbDir = datastoreDir(o.dataDir);
    if (!hadMember && o.join === undefined && needsMigration(dbDir)) {
      const target = new Etcd3({
        hosts: [etcd.endpoints],
        credentials: credentialsOf(etcd.tls),
        grpcOptions: { ...LOCAL_GRPC_OPTIONS },
      });
      try {
        await migrateSqlite(dbDir, target, { logger: log, connect: (url) => new Etcd3({ hosts: [url] }) });
      } finally {
        target.close();
      }
    }
    return { embedded: undefined, etcd, endpoints: etcd.endpoints };
  }
  const listen =
    o.datastoreListenAddress === undefined || o.datastoreListenAddress === ''
      ? defaultDatastoreListen(o.dataDir)
      : o.datastoreListenAddress;
  const ds = await startDatastore({
    dataDir: datastoreDir(o.dataDir),
    listenAddress: listen,
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

/**
 * Step: the etcd client on `endpoints`, the raw KV over it and the resource store; with the `embedded`
 * datastore's backend, the KV reads and writes through it in this process ({@link EmbeddedKv}).
 */
export function openClient(
  { o, registry, stack }: ServerStep,
  endpoints: string,
  tls?: EmbeddedEtcd['tls'],
  embedded?: EtcdBackend,
): DatastoreClient {
  const hosts = endpoints
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  const base = etcdClientOptions(o.datastoreClient);
  const etcd = new Etcd3({
    ...base,
    hosts,
    ...(tls === undefined
      ? {}
      : { credentials: credentialsOf(tls), grpcOptions: { ...base.grpcOptions, ...LOCAL_GRPC_OPTIONS } }),
  });
  stack.push('etcd', () => etcd.close());
  const pageSize = o.datastoreClient?.pageSize;
  const client = new EtcdKv(etcd, pageSize === undefined ? {} : { pageSize });
  // With the embedded datastore, reads and writes skip gRPC (watches still use the client).
  const kv = sharedKv(embedded === undefined ? client : new EmbeddedKv(embedded, client));
  const store = new ResourceStore({
    kv,
    validate: validateObject,
    validateSet: poolConflicts,
    registry,
    ...clockOf(o),
  });
  stack.push('store', () => store.close());
  return { etcd, kv, store };
}

/**
 * Step: the CA, serving certificate and tokens. With the embedded SQLite datastore they live in the data
 * dir; servers sharing etcd (external, or embedded members) share them through it.
 */
export function loadCredentials(
  { o }: ServerStep,
  kv: Kv,
  data: DatastoreEndpoints,
): Promise<ServerCredentials> {
  const sans = servingSans(o);
  return data.embedded === undefined
    ? sharedCredentials(kv, o.dataDir, sans)
    : ensureServerCredentials(o.dataDir, { sans });
}

/** `inner` with a no-op close(): several users share one client, closed once by its owner. */
export function sharedKv(inner: Kv): Kv {
  return {
    get: (key) => inner.get(key),
    list: (prefix) => inner.list(prefix),
    listPage: (prefix, opts) => inner.listPage(prefix, opts),
    put: (key, value, expect, guard) => inner.put(key, value, expect, guard),
    delete: (key, expect) => inner.delete(key, expect),
    batch: (ops) => inner.batch(ops),
    watch: (prefix, from, handlers) => inner.watch(prefix, from, handlers),
    revision: () => inner.revision(),
    close: async () => undefined,
  };
}

/** The etcd3 client's TLS credentials from the member's PEMs. */
function credentialsOf(tls: EmbeddedEtcd['tls']): {
  rootCertificate: Buffer;
  certChain: Buffer;
  privateKey: Buffer;
} {
  return { rootCertificate: tls.ca, certChain: tls.cert, privateKey: tls.key };
}
