import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { notBuilt } from './not-built.js';

export function register(program: Command, _ctx: CliContext): void {
  program
    .command('check-config')
    .description('validate YAML files and print the addresses each Service would get')
    .allowUnknownOption()
    .action(notBuilt('check-config', 'the foundation issue'));
}
