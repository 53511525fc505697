import type { Command } from 'commander';
import { stringify } from 'yaml';
import { describeNode, describeService, type Event, type Node, type Service } from '../../api/index.js';
import { backendSetOf, mergeBackends, SERVICE_NAME_LABEL } from '../../vip-pool/index.js';
import { connectFromFlags } from '../connection.js';
import type { CliContext } from '../context.js';
import { addConnectionOptions, kindArg } from './get.js';

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('describe')
    .description(
      'show one object in detail, with its events (service: its VIPs and who announces them; node: its VIPs)',
    )
    .argument('<kind>', 'service (or any other kind: printed as YAML with its events)')
    .argument('<name>', 'the object')
    .option('-n, --namespace <ns>', 'namespace of the object', 'default');
  addConnectionOptions(cmd);
  cmd.action(async (kind: string, name: string, opts: { namespace: string }) => {
    const r = kindArg(kind);
    const client = await connectFromFlags(cmd.opts());
    try {
      const obj = await client.get(r.resource, name, opts.namespace);
      const ns = r.namespaced ? opts.namespace : 'default';
      const events = (await client.list('events', ns)).items.filter(
        (e: Event) => e.involvedObject?.kind === r.kind && e.involvedObject?.name === name,
      );
      if (r.resource === 'services') {
        const nodes = (await client.list('nodes')).items;
        const sets = [
          ...(await client.get('endpoints', name, ns).then(
            (e) => [e],
            () => [], // none: the Service may have slices only, or no endpoints
          )),
          ...(await client.listAll('endpointslices', ns)).items.filter(
            (s) => s.metadata.labels?.[SERVICE_NAME_LABEL] === name,
          ),
        ].flatMap((o) => backendSetOf(o) ?? []);
        ctx.stdout.write(describeService(obj as Service, events, nodes, Date.now(), mergeBackends(sets)));
        ctx.stdout.write('\n');
        return;
      }
      if (r.resource === 'nodes') {
        ctx.stdout.write(`${describeNode(obj as Node, events, Date.now())}\n`);
        return;
      }
      ctx.stdout.write(stringify(obj));
      ctx.stdout.write(
        events.length === 0
          ? 'Events: <none>\n'
          : `Events:\n${events.map((e) => `  ${e.type ?? 'Normal'}  ${e.reason ?? ''}  ${e.message ?? ''}`).join('\n')}\n`,
      );
    } finally {
      client.close();
    }
  });
}
