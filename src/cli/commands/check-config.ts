import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { VipmeshError } from '../../errors.js';
import {
  type CheckInput,
  Codes,
  checkConfig,
  type ReportFormat,
  renderReport,
} from '../../vip-pool/index.js';
import { collect } from '../config.js';
import type { CliContext } from '../context.js';

/** Read `-f` arguments: a file, `-` for stdin, or a directory (its *.yaml/*.yml/*.json, sorted). */
function readInputs(paths: readonly string[]): CheckInput[] {
  const out: CheckInput[] = [];
  for (const path of paths) {
    try {
      if (path === '-') {
        out.push({ file: '<stdin>', text: readFileSync(0, 'utf8') });
      } else if (statSync(path).isDirectory()) {
        for (const name of readdirSync(path).sort()) {
          if (/\.(ya?ml|json)$/.test(name))
            out.push({ file: join(path, name), text: readFileSync(join(path, name), 'utf8') });
        }
      } else {
        out.push({ file: path, text: readFileSync(path, 'utf8') });
      }
    } catch (err) {
      throw new VipmeshError(Codes.FILE_UNREADABLE, `cannot read ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  return out;
}

/**
 * `vipmesh check-config -f FILE... [-o table|json|yaml]`: the dry run of src/vip-pool/check.ts,
 * exit status 1 on any problem.
 */
export function register(program: Command, ctx: CliContext): void {
  program
    .command('check-config')
    .description('validate YAML files and print the addresses each Service would get (a dry run)')
    .requiredOption('-f, --filename <file>', 'YAML file, directory or - for stdin (repeatable)', collect)
    .addOption(
      new Option('-o, --output <format>', 'output format')
        .choices(['table', 'json', 'yaml'])
        .default('table'),
    )
    .action((opts: { filename: string[]; output: ReportFormat }) => {
      const report = checkConfig(readInputs(opts.filename));
      const { stdout, stderr } = renderReport(report, opts.output);
      ctx.stdout.write(stdout);
      if (stderr !== '') ctx.stderr.write(stderr);
      ctx.exitCode = report.errors.length === 0 ? 0 : 1;
    });
}
