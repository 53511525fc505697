import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { notBuilt } from './not-built.js';

export function register(program: Command, _ctx: CliContext): void {
  program
    .command('token')
    .description('print the join token (or --admin: the admin token)')
    .allowUnknownOption()
    .action(notBuilt('token', 'the tunnel issue'));
}
