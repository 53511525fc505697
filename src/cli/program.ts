import { Command, CommanderError, Option } from 'commander';
import { isVipmeshError } from '../errors.js';
import { packageVersion } from '../util/package-version.js';
import { registerCommands } from './commands/index.js';
import { applyConfig, DEFAULT_CONFIG_PATH, loadConfig } from './config.js';
import { type CliContext, configurable } from './context.js';

/**
 * Build the `vipmesh` command tree for `argv` (only the named subcommand's module is loaded). Output goes
 * to `ctx`; nothing here calls process.exit.
 */
export async function buildProgram(ctx: CliContext, argv: readonly string[] = []): Promise<Command> {
  const program = new Command('vipmesh')
    .description(
      'Virtual IPs over ARP/NDP, host-gw pod routes, an agent tunnel and an etcd-compatible datastore for small bare-metal clusters',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .showHelpAfterError()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    })
    .exitOverride();
  await registerCommands(program, ctx, argv);
  for (const cmd of program.commands) {
    cmd.exitOverride();
    if (configurable.has(cmd)) {
      cmd.addOption(
        new Option('-c, --config <file>', 'config file whose keys are the long flag names')
          .env('VIPMESH_CONFIG')
          .default(DEFAULT_CONFIG_PATH),
      );
    }
  }
  program.hook('preAction', (_root, action) => {
    if (!configurable.has(action)) return;
    const path = action.getOptionValue('config') as string;
    const explicit = action.getOptionValueSource('config') !== 'default';
    const loaded = loadConfig(path, explicit);
    const { unknown } = applyConfig(action, loaded);
    for (const { key, file } of unknown) {
      ctx.stderr.write(
        `warning: ${file}: unknown key "${key}" (not a flag of vipmesh ${action.name()}); ignored\n`,
      );
    }
  });
  return program;
}

/** Run the CLI with `argv` (without node and script). Resolves to the exit status. */
export async function run(argv: string[], ctx: CliContext): Promise<number> {
  try {
    const program = await buildProgram(ctx, argv);
    await program.parseAsync(argv, { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with exit code 0; usage errors were already printed.
      return err.exitCode;
    }
    if (isVipmeshError(err)) {
      ctx.stderr.write(`error: ${err.message} (${err.code})\n`);
      return 1;
    }
    ctx.stderr.write(`error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}
