import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kv } from '../api/kv.js';
import { errnoOf, VipmeshError } from '../errors.js';
import { ensureServerCredentials, type ServerCredentials } from '../pki/index.js';

/** Where servers sharing an external datastore keep the cluster's CA, serving certificate and tokens. */
export const BOOTSTRAP_KEY = '/vipmesh/bootstrap/server-credentials';

type Shared = Pick<
  ServerCredentials,
  'caCertPem' | 'caKeyPem' | 'certPem' | 'keyPem' | 'joinToken' | 'adminToken'
>;

function files(dataDir: string): Record<keyof Shared, string> {
  const server = join(dataDir, 'server');
  const tls = join(server, 'tls');
  return {
    caCertPem: join(tls, 'server-ca.crt'),
    caKeyPem: join(tls, 'server-ca.key'),
    certPem: join(tls, 'serving.crt'),
    keyPem: join(tls, 'serving.key'),
    joinToken: join(server, 'token'),
    adminToken: join(server, 'admin-token'),
  };
}

function writeLocal(dataDir: string, s: Shared): void {
  const f = files(dataDir);
  try {
    mkdirSync(join(dataDir, 'server', 'tls'), { recursive: true, mode: 0o700 });
    for (const k of Object.keys(f) as Array<keyof Shared>) {
      const text = k === 'joinToken' || k === 'adminToken' ? `${s[k]}\n` : s[k];
      if (existsSync(f[k]) && readFileSync(f[k], 'utf8') === text) continue;
      const tmp = `${f[k]}.tmp-${process.pid}`;
      writeFileSync(tmp, text, { mode: 0o600 });
      chmodSync(tmp, 0o600);
      renameSync(tmp, f[k]);
    }
  } catch (err) {
    throw new VipmeshError('VIPMESH_TUNNEL_PKI', `cannot write the shared credentials to ${dataDir}/server`, {
      cause: err,
      details: { errno: errnoOf(err) },
    });
  }
}

function pick(c: ServerCredentials): Shared {
  return {
    caCertPem: c.caCertPem,
    caKeyPem: c.caKeyPem,
    certPem: c.certPem,
    keyPem: c.keyPem,
    joinToken: c.joinToken,
    adminToken: c.adminToken,
  };
}

/**
 * The server credentials, the same on every server of one datastore (k3s shares its bootstrap data the
 * same way): the first server to start stores its CA, serving certificate and tokens under
 * {@link BOOTSTRAP_KEY}; the others take them from there (overwriting their own). The datastore then holds
 * secrets: restrict who can read it (etcd client certificates).
 */
export async function sharedCredentials(kv: Kv, dataDir: string, sans: string[]): Promise<ServerCredentials> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const cur = await kv.get(BOOTSTRAP_KEY);
    if (cur !== undefined) {
      let shared: Shared;
      try {
        shared = JSON.parse(cur.value.toString()) as Shared;
      } catch (err) {
        throw new VipmeshError('VIPMESH_CLUSTER_BOOTSTRAP', `${BOOTSTRAP_KEY} in the datastore is not JSON`, {
          cause: err,
        });
      }
      writeLocal(dataDir, shared);
      return ensureServerCredentials(dataDir);
    }
    const mine = await ensureServerCredentials(dataDir, { sans });
    const res = await kv.put(BOOTSTRAP_KEY, Buffer.from(JSON.stringify(pick(mine))), 0);
    if (res.ok) return mine;
  }
  throw new VipmeshError(
    'VIPMESH_CLUSTER_BOOTSTRAP',
    `could not agree on ${BOOTSTRAP_KEY} with the other servers`,
  );
}
