import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { notBuilt } from './not-built.js';

export function register(program: Command, _ctx: CliContext): void {
  program
    .command('demo')
    .description('build a namespace lab, show a VIP fail over, tear it down')
    .allowUnknownOption()
    .action(notBuilt('demo', 'the cluster issue'));
}
