import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { notBuilt } from './not-built.js';

export function register(program: Command, _ctx: CliContext): void {
  program
    .command('get')
    .description('list objects')
    .allowUnknownOption()
    .action(notBuilt('get', 'the cluster issue'));
}
