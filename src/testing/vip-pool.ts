import type { AddressPool, ServiceRequest } from '../vip-pool/types.js';

/** A pool for tests: autoAssign on, avoidBuggyIPs off unless `extra` says otherwise. */
export function pool(name: string, addresses: string[], extra: Partial<AddressPool> = {}): AddressPool {
  return { name, labels: {}, addresses, autoAssign: true, avoidBuggyIPs: false, ...extra };
}

/** A Service for tests (`ns/name` or `name` in default), TCP/80 unless `extra` says otherwise. */
export function svc(key: string, extra: Partial<ServiceRequest> = {}): ServiceRequest {
  const [namespace, name] = key.includes('/') ? (key.split('/') as [string, string]) : ['default', key];
  return {
    namespace,
    name,
    labels: {},
    requestedIPs: [],
    ipFamilyPolicy: 'SingleStack',
    ipFamilies: [],
    ports: [{ protocol: 'TCP', port: 80 }],
    ...extra,
  };
}
