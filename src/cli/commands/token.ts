import type { Command } from 'commander';
import { DEFAULT_DATA_DIR } from '../../paths.js';
import { ensureServerCredentials } from '../../pki/index.js';
import type { CliContext } from '../context.js';

/** `vipmesh token [--data-dir DIR] [--admin]`: print the join token (making the credentials if needed). */
export function register(program: Command, ctx: CliContext): void {
  program
    .command('token')
    .description(
      'print the join token (or --admin: the admin token), creating the server credentials if needed',
    )
    .option('--data-dir <dir>', 'the server data directory', DEFAULT_DATA_DIR)
    .option('--admin', 'print the admin token for the API instead of the join token')
    .action(async (opts: { dataDir: string; admin?: boolean }) => {
      const creds = await ensureServerCredentials(opts.dataDir);
      ctx.stdout.write(`${opts.admin === true ? creds.adminToken : creds.joinToken}\n`);
    });
}
