/**
 * The control plane: a typed Kubernetes-style resource store on an etcd v3 datastore, the HTTPS JSON API
 * over it, and the client the CLI uses. Controllers drive the store directly (`ResourceStore`).
 */
export { DEFAULT_ADMIN_CONFIG, readAdminConfig, writeAdminConfig } from './admin-config.js';
export { applyObject, outcomeLine, readObjects, typeName } from './apply.js';
export { ApiClient } from './client.js';
export { createResourceStore } from './create.js';
export { kubeconfig } from './kubeconfig.js';
export { legacyPoolObjects, POOL_SOURCE_ANNOTATION, poolSource } from './legacy-pools.js';
export { describeNode, describeService, printTable } from './printers.js';
export type { Status } from './status.js';
export type { Event, KubeObject, Node, ObjectList, ResourceInfo, Service, WatchEvent } from './types.js';
export { RESOURCES, resourceFor } from './types.js';
