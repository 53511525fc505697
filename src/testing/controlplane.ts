/**
 * Fixtures for the control-plane suites on loopback (test/controlplane*.test.ts): one set of server
 * credentials per test file, datastores and API servers stopped when their test ends, a Service.
 */
import { rmSync } from 'node:fs';
import t, { type Test } from 'tap';
import type { Service } from '../api/index.js';
import { ensureServerCredentials, type ServerCredentials } from '../pki/index.js';
import { startTestApi, startTestDatastore, type TestApi } from './datastores.js';
import { tempDir } from './tmp.js';

let credsP: Promise<ServerCredentials> | undefined;
/** One set of server credentials for the whole file (made by src/pki). */
export function creds(): Promise<ServerCredentials> {
  credsP ??= (async () => {
    const dir = tempDir('vipmesh-cp-pki-');
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    return ensureServerCredentials(dir);
  })();
  return credsP;
}

/** A datastore endpoint, stopped when `t` ends: a real etcd process, or the embedded datastore. */
export async function datastore(t: Test, which: 'etcd' | 'kine'): Promise<string> {
  const ds = await startTestDatastore(which);
  t.teardown(() => ds.stop());
  return ds.endpoint;
}

/** An API server on `endpoint` with the shared credentials, stopped when `t` ends. */
export async function api(t: Test, endpoint: string): Promise<TestApi & { c: ServerCredentials }> {
  const c = await creds();
  const a = await startTestApi(endpoint, c);
  t.teardown(() => a.close());
  return { ...a, c };
}

/** A LoadBalancer Service `name` (label app=name, TCP 80), asking for `ip` when given. */
export function svc(name: string, ip?: string): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, labels: { app: name } },
    spec: {
      type: 'LoadBalancer',
      ...(ip === undefined ? {} : { loadBalancerIP: ip }),
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    },
  };
}
