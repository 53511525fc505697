/**
 * The control plane: a typed Kubernetes-style resource store on an etcd v3 datastore, the HTTPS JSON API
 * over it, and the client the CLI uses. Controllers drive the store directly (`ResourceStore`).
 */

export type { AdminConfig } from './admin-config.js';
export {
  DEFAULT_ADMIN_CONFIG,
  readAdminConfig,
  resolveConnection,
  writeAdminConfig,
} from './admin-config.js';
export type { ApplyOutcome, ApplyTarget, SourceObject } from './apply.js';
export { applyObject, expandPaths, outcomeLine, parseObjects, readObjects, typeName } from './apply.js';
export type { Authenticator, Principal } from './auth.js';
export { tokenAuthenticator } from './auth.js';
export type { ApiClientOptions } from './client.js';
export { ApiClient, pathFor } from './client.js';
export type { CreateResourceStoreOptions } from './create.js';
export { createResourceStore } from './create.js';
export type { EtcdKvOptions } from './etcd-kv.js';
export { createEtcdKv, EtcdKv } from './etcd-kv.js';
export type { ApiHandlerOptions } from './handler.js';
export { ApiHandler, parsePath } from './handler.js';
export type { Kv, KvEvent, KvPair, KvWatch, KvWatchHandlers, KvWriteResult } from './kv.js';
export { MemoryKv } from './memory-kv.js';
export type { TableOptions } from './printers.js';
export {
  age,
  describeNode,
  describeService,
  formatTable,
  holdersOf,
  ingressIPs,
  printTable,
} from './printers.js';
export type { LabelRequirement } from './selector.js';
export { matchesLabels, parseLabelSelector } from './selector.js';
export type { FieldProblem, Status, Validator } from './status.js';
export { errorFromStatus, statusFor } from './status.js';
export type { ListOptions, ResourceStoreOptions, StoreWatchEvents, WatchOptions } from './store.js';
export { canonicalJson, keyOf, ResourceStore, StoreWatch } from './store.js';
export type {
  Condition,
  ConfigMap,
  Event,
  IPAddressPool,
  KubeObject,
  L2Advertisement,
  Namespace,
  Node,
  ObjectList,
  ObjectMeta,
  ResourceInfo,
  ResourceName,
  ResourceTypes,
  Service,
  ServicePort,
  WatchEvent,
} from './types.js';
export { apiVersionOf, nodeReady, RESOURCES, resourceFor } from './types.js';
