import type { Command } from 'commander';
import { stringify } from 'yaml';
import {
  type ApiClient,
  type KubeObject,
  legacyPoolObjects,
  type Node,
  type ObjectList,
  poolSource,
  printTable,
  RESOURCES,
  type ResourceInfo,
  resourceFor,
  typeName,
  type WatchEvent,
} from '../../api/index.js';
import { VipmeshError } from '../../errors.js';
import { connectFromFlags, connectionOptions } from '../connection.js';
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
      `unknown kind "${kind}" (known: ${Object.keys(RESOURCES).join(', ')})`,
    );
  }
  return r;
}

/**
 * `get ipaddresspools`: the stored pools plus those of legacy MetalLB ConfigMaps, which the allocator uses
 * too (marked by their annotation and the SOURCE column). Only the CLI adds them; the API lists what is
 * stored, as MetalLB's CRDs list only CRD objects.
 */
async function withLegacyPools(
  client: ApiClient,
  list: ObjectList,
  namespace: string | undefined,
): Promise<ObjectList> {
  const legacy = legacyPoolObjects((await client.listAll('configmaps', namespace)).items);
  return { ...list, items: [...list.items, ...legacy] };
}

/** One pool by name: the stored one, else a legacy ConfigMap's of that name, else the API's NotFound. */
async function getPool(client: ApiClient, name: string, namespace: string): Promise<KubeObject> {
  try {
    return await client.get('ipaddresspools', name, namespace);
  } catch (err) {
    if (!(err instanceof VipmeshError) || err.code !== 'VIPMESH_API_NOT_FOUND') throw err;
    const legacy = legacyPoolObjects((await client.listAll('configmaps', namespace)).items);
    const found = legacy.find((p) => p.metadata.name === name);
    if (found === undefined) throw err;
    return found;
  }
}

/** Print objects in `-o` format; the table when none. */
async function printObjects(
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
      if (wide && r.resource === 'services') nodes = (await client.listAll('nodes')).items;
      ctx.stdout.write(
        printTable(r, items, {
          wide,
          withNamespace: opts.withNamespace,
          now: Date.now(),
          ...(nodes ? { nodes } : {}),
          ...(r.resource === 'ipaddresspools'
            ? { extraColumns: [{ header: 'SOURCE', value: poolSource }] }
            : {}),
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

/** `get -w`: after the list, one line (or document) per change until Ctrl-C or the server goes away. */
async function follow(
  ctx: CliContext,
  client: ApiClient,
  r: ResourceInfo,
  from: string,
  opts: { name?: string; namespace?: string; output?: string; withNamespace: boolean; header: boolean },
): Promise<void> {
  let header = opts.header;
  const print = (e: WatchEvent) => {
    if (opts.name !== undefined && e.object.metadata.name !== opts.name) return;
    if (opts.output === 'json') ctx.stdout.write(`${JSON.stringify(e)}\n`);
    else if (opts.output === 'yaml') ctx.stdout.write(`---\n${stringify(e)}`);
    else if (opts.output === 'name') ctx.stdout.write(`${typeName(r.resource)}/${e.object.metadata.name}\n`);
    else {
      // The table row of the object, without the header (as kubectl -w prints it).
      const table = printTable(r, [e.object], {
        wide: opts.output === 'wide',
        withNamespace: opts.withNamespace,
        now: Date.now(),
      });
      ctx.stdout.write(header ? table.slice(table.indexOf('\n') + 1) : table);
      header = true;
    }
  };
  const w = await client.watch(
    r.resource,
    {
      resourceVersion: from,
      ...(r.namespaced && opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
    },
    print,
  );
  const stop = () => w.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await w.done;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('get')
    .description(
      'list objects: services, nodes, ipaddresspools, l2advertisements, endpoints, endpointslices, events, configmaps',
    )
    .argument(
      '<kind>',
      'what to list (services, svc, nodes, ipaddresspools, endpoints, ep, endpointslices, ...)',
    )
    .argument('[name]', 'one object only')
    .option('-o, --output <format>', 'wide, json, yaml or name (default: a table)')
    .option('-n, --namespace <ns>', 'only this namespace (default: all namespaces; with a name: default)')
    .option('-A, --all-namespaces', 'every namespace (the default when listing)')
    .option('-w, --watch', 'after listing, print every change as it happens (until Ctrl-C)')
    .option('--chunk-size <n>', 'list in pages of this many objects', '500');
  addConnectionOptions(cmd);
  cmd.action(
    async (
      kind: string,
      name: string | undefined,
      opts: { output?: string; namespace?: string; watch?: boolean; chunkSize: string },
    ) => {
      const r = kindArg(kind);
      const chunk = Number(opts.chunkSize);
      if (!Number.isSafeInteger(chunk) || chunk < 1) {
        throw new VipmeshError(
          'VIPMESH_CLI_BAD_INPUT',
          `--chunk-size: "${opts.chunkSize}" is not a positive integer`,
        );
      }
      const client = await connectFromFlags(cmd.opts());
      try {
        const pools = r.resource === 'ipaddresspools';
        let result: KubeObject | ObjectList;
        if (name === undefined) {
          result = await client.listAll(r.resource, r.namespaced ? opts.namespace : undefined, chunk);
          if (pools) result = await withLegacyPools(client, result, opts.namespace);
        } else if (pools) {
          result = await getPool(client, name, opts.namespace ?? 'default');
        } else {
          result = await client.get(r.resource, name, opts.namespace ?? 'default');
        }
        const withNamespace = r.namespaced && name === undefined && opts.namespace === undefined;
        const output = opts.output ? { output: opts.output } : {};
        await printObjects(ctx, client, r, result, { withNamespace, ...output });
        if (opts.watch === true) {
          const ns = name === undefined ? opts.namespace : (opts.namespace ?? 'default');
          const listed = !Array.isArray(result['items']) || result['items'].length > 0;
          await follow(ctx, client, r, result.metadata.resourceVersion ?? '0', {
            withNamespace,
            header: listed,
            ...output,
            ...(name === undefined ? {} : { name }),
            ...(ns === undefined ? {} : { namespace: ns }),
          });
        }
      } finally {
        client.close();
      }
    },
  );
}
