import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { VipmeshError } from '../errors.js';
import { connectionOf, isKubeconfig, kubeconfig } from './kubeconfig.js';

/** Where the server writes, and the CLI reads, the admin connection (like k3s' /etc/rancher/k3s/k3s.yaml). */
export const DEFAULT_ADMIN_CONFIG = '/etc/vipmesh/vipmesh.yaml';

/** The admin config: the API URL and the admin token. */
interface AdminConfig {
  server: string;
  token: string;
}

/**
 * Write the admin config, a kubeconfig (the API URL, the CA, the admin token), with mode 0600 (it holds the
 * admin secret): `kubectl --kubeconfig PATH` and the vipmesh CLI both read it.
 */
export function writeAdminConfig(path: string, cfg: AdminConfig & { caCertPem: string }): void {
  mkdirSync(dirname(path), { recursive: true });
  const text = `# written by vipmesh server: a kubeconfig for kubectl and vipmesh get/apply/delete (holds the admin token)\n${stringify(kubeconfig(cfg))}`;
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/**
 * Read the admin config, a kubeconfig (its current context's server and token) or the older map with
 * `server` and `token`; undefined when the file does not exist. `VIPMESH_ADMIN_CONFIG_INVALID` when it is
 * neither, or a string is not a string.
 */
export function readAdminConfig(path: string): Partial<AdminConfig> | undefined {
  if (!existsSync(path)) return undefined;
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new VipmeshError('VIPMESH_ADMIN_CONFIG_INVALID', `${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new VipmeshError('VIPMESH_ADMIN_CONFIG_INVALID', `${path}: expected a map with server and token`);
  }
  let d = doc as Record<string, unknown>;
  if (isKubeconfig(d)) {
    try {
      d = connectionOf(d);
    } catch (err) {
      throw new VipmeshError('VIPMESH_ADMIN_CONFIG_INVALID', `${path}: ${(err as Error).message}`);
    }
  }
  const out: Partial<AdminConfig> = {};
  for (const k of ['server', 'token'] as const) {
    if (d[k] === undefined) continue;
    if (typeof d[k] !== 'string') {
      throw new VipmeshError('VIPMESH_ADMIN_CONFIG_INVALID', `${path}: "${k}" must be a string`);
    }
    out[k] = d[k] as string;
  }
  return out;
}

/**
 * The connection the CLI uses: flags/env first (`--server`/`VIPMESH_URL`, `--token`/`VIPMESH_TOKEN`), then the
 * admin config. `VIPMESH_API_NO_SERVER` when neither gives both.
 */
export function resolveConnection(
  flags: { server?: string | undefined; token?: string | undefined },
  adminConfigPath: string,
): AdminConfig {
  let server = flags.server;
  let token = flags.token;
  if (server === undefined || token === undefined) {
    const file = readAdminConfig(adminConfigPath);
    server ??= file?.server;
    token ??= file?.token;
  }
  if (server === undefined || token === undefined) {
    throw new VipmeshError(
      'VIPMESH_API_NO_SERVER',
      `no ${server === undefined ? 'server URL' : 'admin token'}: pass --server and --token, set VIPMESH_URL and VIPMESH_TOKEN, or run on the server (${adminConfigPath})`,
    );
  }
  return { server, token };
}
