import type { Command } from 'commander';
import { connectFromFlags } from '../connection.js';
import type { CliContext } from '../context.js';
import { addConnectionOptions, kindArg } from './get.js';

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('delete')
    .description('delete objects by kind and name')
    .argument('<kind>', 'services, nodes, ipaddresspools, l2advertisements, ...')
    .argument('<names...>', 'the objects to delete')
    .option('-n, --namespace <ns>', 'namespace of the objects', 'default');
  addConnectionOptions(cmd);
  cmd.action(async (kind: string, names: string[], opts: { namespace: string }) => {
    const r = kindArg(kind);
    const client = await connectFromFlags(cmd.opts());
    try {
      for (const name of names) {
        await client.delete(r.resource, name, opts.namespace);
        ctx.stdout.write(`${r.kind.toLowerCase()} "${name}" deleted\n`);
      }
    } finally {
      client.close();
    }
  });
}
