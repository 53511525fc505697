import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { notBuilt } from './not-built.js';

export function register(program: Command, _ctx: CliContext): void {
  program
    .command('apply')
    .description('create or update objects from YAML files')
    .allowUnknownOption()
    .action(notBuilt('apply', 'the cluster issue'));
}
