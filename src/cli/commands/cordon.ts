import type { Command } from 'commander';
import type { Node } from '../../api/index.js';
import { isVipmeshError } from '../../errors.js';
import { connectFromFlags } from '../connection.js';
import type { CliContext } from '../context.js';
import { addConnectionOptions } from './get.js';

/**
 * `vipmesh cordon NODE...` and `vipmesh uncordon NODE...`, as kubectl has them: set or clear the Node's
 * `spec.unschedulable`. A cordoned node keeps the VIPs it holds and is given no new one (placement's
 * `cordoned`); `get nodes` shows it `Ready,SchedulingDisabled`.
 */
export function register(program: Command, ctx: CliContext): void {
  registerVerb(program, ctx, 'cordon');
}

/** Register `cordon` or `uncordon` (src/cli/commands/uncordon.ts). */
export function registerVerb(program: Command, ctx: CliContext, verb: 'cordon' | 'uncordon'): void {
  const unschedulable = verb === 'cordon';
  const cmd = program
    .command(verb)
    .description(
      unschedulable
        ? 'mark nodes unschedulable: they keep their VIPs but are given no new one'
        : 'mark nodes schedulable again',
    )
    .argument('<nodes...>', 'the nodes');
  addConnectionOptions(cmd);
  cmd.action(async (names: string[]) => {
    const client = await connectFromFlags(cmd.opts());
    try {
      for (const name of names) {
        const changed = await setUnschedulable(
          (n) => client.get('nodes', n),
          (node) => client.update('nodes', node),
          name,
          unschedulable,
        );
        ctx.stdout.write(`node/${name} ${changed ? '' : 'already '}${verb}ed\n`);
      }
    } finally {
      client.close();
    }
  });
}

/** Set `spec.unschedulable` on Node `name`, retrying on a conflicting write; false when it already was. */
async function setUnschedulable(
  get: (name: string) => Promise<Node>,
  update: (node: Node) => Promise<unknown>,
  name: string,
  unschedulable: boolean,
): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    const node = await get(name);
    if ((node.spec?.unschedulable === true) === unschedulable) return false;
    const { unschedulable: _old, ...rest } = node.spec ?? {};
    try {
      await update({ ...node, spec: unschedulable ? { ...rest, unschedulable: true } : rest });
      return true;
    } catch (err) {
      // The node lifecycle writes the Node too (labels, annotations): read it again and retry.
      if (attempt >= 4 || !isVipmeshError(err, 'VIPMESH_API_CONFLICT')) throw err;
    }
  }
}
