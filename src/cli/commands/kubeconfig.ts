import type { Command } from 'commander';
import { stringify } from 'yaml';
import { DEFAULT_ADMIN_CONFIG, kubeconfig, readAdminConfig } from '../../api/index.js';
import { DEFAULT_DATA_DIR } from '../../paths.js';
import { ensureServerCredentials } from '../../pki/index.js';
import type { CliContext } from '../context.js';

/**
 * `vipmesh kubeconfig [--server URL] [--data-dir DIR]`: print a kubeconfig with the admin token and the CA
 * of the server whose data directory this is, for kubectl on this or another machine.
 */
export function register(program: Command, ctx: CliContext): void {
  program
    .command('kubeconfig')
    .description(
      'print a kubeconfig (server URL, CA, admin token) for kubectl, from the server data directory',
    )
    .option(
      '-s, --server <url>',
      'the URL kubectl should use (default: the one in the admin config, else https://127.0.0.1:6443)',
    )
    .option('--data-dir <dir>', 'the server data directory', DEFAULT_DATA_DIR)
    .option(
      '--admin-config <file>',
      'where the server URL is read from when --server is not given',
      DEFAULT_ADMIN_CONFIG,
    )
    .action(async (opts: { server?: string; dataDir: string; adminConfig: string }) => {
      const creds = await ensureServerCredentials(opts.dataDir, { create: false });
      const server = opts.server ?? readAdminConfig(opts.adminConfig)?.server ?? 'https://127.0.0.1:6443';
      const doc = kubeconfig({ server, token: creds.adminToken, caCertPem: creds.caCertPem });
      ctx.stdout.write(stringify(doc));
    });
}
