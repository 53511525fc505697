/**
 * The admin config as a kubeconfig, so kubectl and the vipmesh CLI read the same file: one cluster (the
 * API URL and the CA, inline), one user (the admin token), one context, current.
 */

/** What a kubeconfig for vipmesh holds. */
export interface KubeconfigInput {
  server: string;
  token: string;
  /** The cluster CA (PEM), embedded as `certificate-authority-data`. */
  caCertPem: string;
  /** Names of the cluster, user and context; default `vipmesh`. */
  name?: string;
}

/** A kubeconfig (`apiVersion: v1`, `kind: Config`) as a plain object, ready for YAML. */
export function kubeconfig(k: KubeconfigInput): Record<string, unknown> {
  const name = k.name ?? 'vipmesh';
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name,
        cluster: {
          server: k.server,
          'certificate-authority-data': Buffer.from(k.caCertPem, 'utf8').toString('base64'),
        },
      },
    ],
    users: [{ name: `${name}-admin`, user: { token: k.token } }],
    contexts: [{ name, context: { cluster: name, user: `${name}-admin` } }],
    'current-context': name,
    preferences: {},
  };
}

/** True when `doc` looks like a kubeconfig rather than the older `{server, token}` admin config. */
export function isKubeconfig(doc: Record<string, unknown>): boolean {
  return doc['kind'] === 'Config' || Array.isArray(doc['clusters']) || Array.isArray(doc['contexts']);
}

function named(list: unknown, name: unknown, what: string): Record<string, unknown> {
  const hit = Array.isArray(list)
    ? (list as Array<Record<string, unknown>>).find((e) => typeof e === 'object' && e?.['name'] === name)
    : undefined;
  if (hit === undefined) throw new Error(`${what} "${String(name)}" is not in the file`);
  const body = hit[what];
  if (typeof body !== 'object' || body === null)
    throw new Error(`${what} "${String(name)}" has no ${what} map`);
  return body as Record<string, unknown>;
}

/**
 * The server URL and bearer token of a kubeconfig's current context (or its only context). Throws an Error
 * saying what is missing; fields that are absent are left out.
 */
export function connectionOf(doc: Record<string, unknown>): { server?: unknown; token?: unknown } {
  const contexts = doc['contexts'];
  let current = doc['current-context'];
  if ((current === undefined || current === '') && Array.isArray(contexts) && contexts.length === 1) {
    current = (contexts[0] as Record<string, unknown> | undefined)?.['name'];
  }
  if (current === undefined || current === '') throw new Error('no current-context');
  const ctx = named(contexts, current, 'context');
  const cluster = named(doc['clusters'], ctx['cluster'], 'cluster');
  const user = named(doc['users'], ctx['user'], 'user');
  return {
    ...(cluster['server'] === undefined ? {} : { server: cluster['server'] }),
    ...(user['token'] === undefined ? {} : { token: user['token'] }),
  };
}
