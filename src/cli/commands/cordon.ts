import type { Command } from 'commander';
import type { Node } from '../../api/index.js';
import { DRAIN_ANNOTATION } from '../../controllers/placement.js';
import { isVipmeshError } from '../../errors.js';
import { connectFromFlags } from '../connection.js';
import type { CliContext } from '../context.js';
import { addConnectionOptions } from './get.js';

/**
 * `vipmesh cordon NODE...` and `vipmesh uncordon NODE...`, as kubectl has them: set or clear the Node's
 * `spec.unschedulable`. A cordoned node keeps the VIPs it holds and is given no new one (placement's
 * `cordoned`); `get nodes` shows it `Ready,SchedulingDisabled`. Uncordon also ends a drain (drain.ts).
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
        // Uncordon also ends a drain.
        const changed = await setNodeMarks(
          (n) => client.get('nodes', n),
          (node) => client.update('nodes', node),
          name,
          unschedulable ? { unschedulable } : { unschedulable, drain: false },
        );
        ctx.stdout.write(`node/${name} ${changed ? '' : 'already '}${verb}ed\n`);
      }
    } finally {
      client.close();
    }
  });
}

/** What a verb sets on a Node: `spec.unschedulable`, and the drain annotation when given. */
export interface NodeMarks {
  unschedulable: boolean;
  drain?: boolean;
}

/**
 * Set `marks` on Node `name` (`drain: true` adds {@link DRAIN_ANNOTATION}, `false` removes it), retrying on
 * a conflicting write; false when the Node already had them.
 */
export async function setNodeMarks(
  get: (name: string) => Promise<Node>,
  update: (node: Node) => Promise<unknown>,
  name: string,
  marks: NodeMarks,
): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    const node = await get(name);
    const annotations = { ...(node.metadata.annotations ?? {}) };
    const drained = annotations[DRAIN_ANNOTATION] !== undefined;
    if (
      (node.spec?.unschedulable === true) === marks.unschedulable &&
      (marks.drain === undefined || drained === marks.drain)
    )
      return false;
    if (marks.drain === true) annotations[DRAIN_ANNOTATION] = 'true';
    else if (marks.drain === false) delete annotations[DRAIN_ANNOTATION];
    const { unschedulable: _old, ...rest } = node.spec ?? {};
    try {
      await update({
        ...node,
        metadata: { ...node.metadata, annotations },
        spec: marks.unschedulable ? { ...rest, unschedulable: true } : rest,
      });
      return true;
    } catch (err) {
      // The node lifecycle writes the Node too (labels, annotations): read it again and retry.
      if (attempt >= 4 || !isVipmeshError(err, 'VIPMESH_API_CONFLICT')) throw err;
    }
  }
}
