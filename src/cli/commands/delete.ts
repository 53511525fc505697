import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { notBuilt } from './not-built.js';

export function register(program: Command, _ctx: CliContext): void {
  program
    .command('delete')
    .description('delete an object')
    .allowUnknownOption()
    .action(notBuilt('delete', 'the cluster issue'));
}
