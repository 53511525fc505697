import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { notBuilt } from './not-built.js';

export function register(program: Command, _ctx: CliContext): void {
  program
    .command('agent')
    .description('run an agent: join the server, announce assigned VIPs, program host-gw routes')
    .allowUnknownOption()
    .action(notBuilt('agent', 'the cluster issue'));
}
