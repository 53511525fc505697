import type { Command } from 'commander';
import { runDemo } from '../../lab/demo.js';
import type { CliContext } from '../context.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('demo')
    .description(
      'build a namespace lab (server, two agents, a client), apply config/demo, pull the VIP holder’s cable and print how long the client was without service; tears everything down (needs root)',
    )
    .option('--cuts <n>', 'how many times to pull the holder’s cable', '1')
    .action(async (opts: { cuts: string }) => {
      const started = Date.now();
      await runDemo({
        cuts: Math.max(1, Number.parseInt(opts.cuts, 10) || 1),
        print: (line) =>
          ctx.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}\n`),
      });
    });
}
