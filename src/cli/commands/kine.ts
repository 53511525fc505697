import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { notBuilt } from './not-built.js';

export function register(program: Command, _ctx: CliContext): void {
  program
    .command('kine')
    .description('run the etcd v3 compatible datastore on its own')
    .allowUnknownOption()
    .action(notBuilt('kine', 'the datastore issue'));
}
