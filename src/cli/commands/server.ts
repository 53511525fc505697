import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { notBuilt } from './not-built.js';

export function register(program: Command, _ctx: CliContext): void {
  program
    .command('server')
    .description('run the server: datastore, API, tunnel and controllers (and the local agent)')
    .allowUnknownOption()
    .action(notBuilt('server', 'the cluster issue'));
}
