import { PassThrough } from 'node:stream';
import type { CliContext } from '../cli/context.js';
import type { Logger } from '../log.js';

/** A {@link CliContext} whose output is kept, for running the CLI in-process. */
export interface CapturedCli extends CliContext {
  /** Everything written to stdout so far. */
  out(): string;
  /** Everything written to stderr so far. */
  err(): string;
}

/**
 * A CLI context over in-memory streams. `logger` defaults to one that throws, for commands that must not
 * start a daemon; pass `silentLogger` for those that log.
 */
export function captureCli(
  logger: () => Logger = () => {
    throw new Error('no logger in this test');
  },
): CapturedCli {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  return { stdout, stderr, exitCode: 0, logger, out: () => out, err: () => err };
}
