import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { notBuilt } from './not-built.js';

export function register(program: Command, _ctx: CliContext): void {
  program
    .command('announce')
    .description('announce VIPs on an interface over ARP/NDP until SIGTERM, without a control plane')
    .allowUnknownOption()
    .action(notBuilt('announce', 'the announcer issue'));
}
