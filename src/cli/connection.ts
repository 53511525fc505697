/** What the admin subcommands (apply, get, delete, describe) share: how they find and reach the server. */
import { Option } from 'commander';
import { DEFAULT_ADMIN_CONFIG, resolveConnection } from '../api/admin-config.js';
import { ApiClient } from '../api/client.js';

/** The connection flags, each with its environment variable. */
export function connectionOptions(): Option[] {
  return [
    new Option('-s, --server <url>', 'the vipmesh server, https://HOST:6443').env('VIPMESH_URL'),
    new Option('--token <token>', 'the admin token (`vipmesh token --admin` on the server)').env(
      'VIPMESH_TOKEN',
    ),
    new Option('--admin-config <file>', 'where to read server and token from when not given').default(
      DEFAULT_ADMIN_CONFIG,
    ),
  ];
}

/** The parsed connection flags. */
interface ConnectionFlags {
  server?: string;
  token?: string;
  adminConfig?: string;
}

/** Resolve flags/env/admin config, pin the CA from the token, and return a client. */
export async function connectFromFlags(flags: ConnectionFlags): Promise<ApiClient> {
  const conn = resolveConnection(
    { server: flags.server, token: flags.token },
    flags.adminConfig ?? DEFAULT_ADMIN_CONFIG,
  );
  return ApiClient.connect(conn);
}
