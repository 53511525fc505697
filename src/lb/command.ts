import { spawn } from 'node:child_process';

/** What a finished command printed and how it exited. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a program with optional stdin (the seam tests replace; production is {@link runCommand}). */
export type RunCommand = (file: string, args: readonly string[], stdin?: string) => Promise<CommandResult>;

/** Run `file` (found on PATH); a program that cannot be started is an exit code of 127 with the reason. */
export const runCommand: RunCommand = (file, args, stdin) =>
  new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => undefined); // the program exited before reading: its exit code says why
    child.on('error', (e) => resolve({ code: 127, stdout: '', stderr: `${file}: ${e.message}` }));
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? (signal === null ? 1 : 128),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      }),
    );
    child.stdin.end(stdin ?? '');
  });
