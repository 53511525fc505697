import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { VipmeshError } from '../errors.js';

/** Where the server writes, and the CLI reads, the admin connection (like k3s' /etc/rancher/k3s/k3s.yaml). */
export const DEFAULT_ADMIN_CONFIG = '/etc/vipmesh/vipmesh.yaml';

/** The admin config: the API URL and the admin token. */
interface AdminConfig {
  server: string;
  token: string;
}

/** Write the admin config with mode 0600 (it holds the admin secret). */
export function writeAdminConfig(path: string, cfg: AdminConfig): void {
  mkdirSync(dirname(path), { recursive: true });
  const text = `# written by vipmesh server: the API URL and the admin token for vipmesh get/apply/delete\n${stringify(cfg)}`;
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/**
 * Read the admin config; undefined when the file does not exist. `VIPMESH_ADMIN_CONFIG_INVALID` when it is
 * not YAML with `server` and `token` strings.
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
  const d = doc as Record<string, unknown>;
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
