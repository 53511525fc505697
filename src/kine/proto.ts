import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { type GrpcObject, loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/** The etcd v3 services this datastore registers. */
export type EtcdService = 'KV' | 'Watch' | 'Lease' | 'Cluster' | 'Maintenance' | 'Auth';

let cached: Record<EtcdService, ServiceDefinition> | undefined;

/**
 * The etcd v3 service definitions, loaded from the protos the `etcd3` package ships (field numbers exactly
 * etcd's). int64 arrive as decimal strings, bytes as Buffers, enums as numbers, defaults filled in.
 */
export function etcdServices(): Record<EtcdService, ServiceDefinition> {
  if (cached !== undefined) return cached;
  const require = createRequire(import.meta.url);
  const protoDir = join(dirname(require.resolve('etcd3/package.json')), 'proto');
  const def = loadSync(join(protoDir, 'rpc.proto'), {
    keepCase: true,
    longs: String,
    enums: Number,
    bytes: Buffer,
    defaults: true,
    oneofs: true,
    includeDirs: [protoDir],
  });
  const pkg = (loadPackageDefinition(def) as GrpcObject)['etcdserverpb'] as GrpcObject;
  const svc = (name: EtcdService) => (pkg[name] as unknown as { service: ServiceDefinition }).service;
  cached = {
    KV: svc('KV'),
    Watch: svc('Watch'),
    Lease: svc('Lease'),
    Cluster: svc('Cluster'),
    Maintenance: svc('Maintenance'),
    Auth: svc('Auth'),
  };
  return cached;
}
