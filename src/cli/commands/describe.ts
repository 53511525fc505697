import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { notBuilt } from './not-built.js';

export function register(program: Command, _ctx: CliContext): void {
  program
    .command('describe')
    .description('show one object in detail')
    .allowUnknownOption()
    .action(notBuilt('describe', 'the cluster issue'));
}
