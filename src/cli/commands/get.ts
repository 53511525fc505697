import type { Command } from 'commander';
import { stringify } from 'yaml';
import {
  type ApiClient,
  connectFromFlags,
  connectionOptions,
  type KubeObject,
  type Node,
  type ObjectList,
  printTable,
  type ResourceInfo,
  resourceFor,
  typeName,
} from '../../controlplane/index.js';
import { VipmeshError } from '../../errors.js';
import type { CliContext } from '../context.js';

/** Give `cmd` the connection flags (--server, --token, --admin-config). */
export function addConnectionOptions(cmd: Command): void {
  for (const o of connectionOptions()) cmd.addOption(o);
}

/** The resource a CLI kind argument names, or VIPMESH_CLI_BAD_INPUT. */
export function kindArg(kind: string): ResourceInfo {
  const r = resourceFor(kind);
  if (r === undefined) {
    throw new VipmeshError(
      'VIPMESH_CLI_BAD_INPUT',
      `unknown kind "${kind}" (known: services, nodes, ipaddresspools, l2advertisements, events, configmaps)`,
    );
  }
  return r;
}

/** Print objects in `-o` format; the table when none. */
export async function printObjects(
  ctx: CliContext,
  client: ApiClient,
  r: ResourceInfo,
  result: KubeObject | ObjectList,
  opts: { output?: string; withNamespace: boolean },
): Promise<void> {
  const items: KubeObject[] = Array.isArray(result['items'])
    ? (result['items'] as KubeObject[])
    : [result as KubeObject];
  switch (opts.output) {
    case 'json':
      ctx.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return;
    case 'yaml':
      ctx.stdout.write(stringify(result));
      return;
    case 'name':
      for (const o of items) ctx.stdout.write(`${typeName(r.resource)}/${o.metadata.name}\n`);
      return;
    case undefined:
    case 'wide': {
      if (items.length === 0) {
        ctx.stderr.write('No resources found\n');
        return;
      }
      const wide = opts.output === 'wide';
      let nodes: Node[] | undefined;
      if (wide && r.resource === 'services') nodes = (await client.list('nodes')).items;
      ctx.stdout.write(
        printTable(r, items, {
          wide,
          withNamespace: opts.withNamespace,
          now: Date.now(),
          ...(nodes ? { nodes } : {}),
        }),
      );
      return;
    }
    default:
      throw new VipmeshError(
        'VIPMESH_CLI_BAD_INPUT',
        `unknown output format "${opts.output}" (wide, json, yaml, name)`,
      );
  }
}

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('get')
    .description('list objects: services, nodes, ipaddresspools, l2advertisements, events, configmaps')
    .argument('<kind>', 'what to list (services, svc, nodes, ipaddresspools, l2advertisements, events, ...)')
    .argument('[name]', 'one object only')
    .option('-o, --output <format>', 'wide, json, yaml or name (default: a table)')
    .option('-n, --namespace <ns>', 'only this namespace (default: all namespaces; with a name: default)')
    .option('-A, --all-namespaces', 'every namespace (the default when listing)');
  addConnectionOptions(cmd);
  cmd.action(
    async (kind: string, name: string | undefined, opts: { output?: string; namespace?: string }) => {
      const r = kindArg(kind);
      const client = await connectFromFlags(cmd.opts());
      try {
        const result =
          name === undefined
            ? await client.list(r.resource, r.namespaced ? opts.namespace : undefined)
            : await client.get(r.resource, name, opts.namespace ?? 'default');
        const withNamespace = r.namespaced && name === undefined && opts.namespace === undefined;
        await printObjects(ctx, client, r, result, {
          withNamespace,
          ...(opts.output ? { output: opts.output } : {}),
        });
      } finally {
        client.close();
      }
    },
  );
}
