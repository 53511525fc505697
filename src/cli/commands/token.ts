import type { Command } from 'commander';
import { DEFAULT_DATA_DIR } from '../../paths.js';
import { ensureServerCredentials } from '../../pki/index.js';
import type { CliContext } from '../context.js';

/**
 * `vipmesh token [--data-dir DIR] [--admin]`: print the join token of the server whose data directory this
 * is. Only the server makes credentials; a directory without them is an error naming the missing file.
 */
export function register(program: Command, ctx: CliContext): void {
  program
    .command('token')
    .description("print the join token (or --admin: the admin token) from a server's data directory")
    .option('--data-dir <dir>', 'the server data directory', DEFAULT_DATA_DIR)
    .option('--admin', 'print the admin token for the API instead of the join token')
    .action(async (opts: { dataDir: string; admin?: boolean }) => {
      const creds = await ensureServerCredentials(opts.dataDir, { create: false });
      ctx.stdout.write(`${opts.admin === true ? creds.adminToken : creds.joinToken}\n`);
    });
}
