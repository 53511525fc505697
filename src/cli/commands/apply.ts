import type { Command } from 'commander';
import { applyObject, outcomeLine, readObjects, typeName } from '../../api/index.js';
import { isVipmeshError } from '../../errors.js';
import { collect } from '../config.js';
import { connectFromFlags } from '../connection.js';
import type { CliContext } from '../context.js';
import { addConnectionOptions } from './get.js';

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('apply')
    .description('create or update objects from YAML files (Services, IPAddressPools, L2Advertisements, ...)')
    .requiredOption(
      '-f, --filename <file>',
      'a YAML or JSON file, a directory of them, or - for stdin (repeatable)',
      collect,
    )
    .option('-n, --namespace <ns>', 'namespace for objects that do not name one', 'default');
  addConnectionOptions(cmd);
  cmd.action(async (opts: { filename: string[]; namespace: string }) => {
    // Parse everything first: a typo in the third document must not leave the first two applied alone.
    const objects = readObjects(opts.filename, opts.namespace);
    const client = await connectFromFlags(cmd.opts());
    try {
      for (const o of objects) {
        try {
          ctx.stdout.write(`${outcomeLine(await applyObject(client, o))}\n`);
        } catch (err) {
          if (!isVipmeshError(err) || err.code === 'VIPMESH_API_UNREACHABLE') throw err;
          ctx.stderr.write(
            `error: ${typeName(o.r.resource)}/${o.obj.metadata.name} (${o.source}): ${err.message} (${err.code})\n`,
          );
          ctx.exitCode = 1;
        }
      }
    } finally {
      client.close();
    }
  });
}
