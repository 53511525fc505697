import type { Command } from 'commander';
import { packageVersion } from '../../util/package-version.js';
import type { CliContext } from '../context.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('version')
    .description('print the vipmesh version and the runtime')
    .action(() => {
      ctx.stdout.write(
        `vipmesh v${packageVersion()} (node ${process.version}, ${process.platform}/${process.arch})\n`,
      );
    });
}
