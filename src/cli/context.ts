import type { Command } from 'commander';
import { createLogger, type Logger } from '../log.js';

/** What every subcommand gets: output streams and a way to make its logger. */
export interface CliContext {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** The root logger, made on first use (so commands that only print never start pino). */
  logger(): Logger;
  /** The exit status the command wants (0 unless it sets it); thrown errors give 1. */
  exitCode: number;
}

/** The production context: process streams and a pino logger (pretty on a TTY). */
export function processContext(): CliContext {
  let log: Logger | undefined;
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    exitCode: 0,
    logger() {
      log ??= createLogger();
      return log;
    },
  };
}

/** Commands that read /etc/vipmesh/config.yaml (the daemons). Marked by {@link daemonCommand}. */
export const configurable = new WeakSet<Command>();

/** Mark `cmd` as reading the config file and give it `--config` (env VIPMESH_CONFIG). */
export function daemonCommand(cmd: Command): Command {
  configurable.add(cmd);
  return cmd;
}
