import type { Command } from 'commander';
import type { Node } from '../../api/index.js';
import { parseDuration } from '../../util/duration.js';
import { connectFromFlags } from '../connection.js';
import type { CliContext } from '../context.js';
import { setNodeMarks } from './cordon.js';
import { addConnectionOptions } from './get.js';

/** How often the Node is read while its VIPs move. */
const POLL_MS = 200;

/**
 * `vipmesh drain NODE...`, as kubectl's: cordon each node and move its VIPs to other nodes while its agent
 * keeps running (for maintenance that does not stop the agent). The node gets the drain annotation, the
 * master places each of its VIPs elsewhere, and the agent keeps answering for each VIP until its new holder
 * announces it (make-before-break, at most the agent's `--handover-timeout`). The command waits until the
 * node holds no VIP; a VIP that no other node may hold stays, and after `--timeout` the command lists those
 * and exits 1. `vipmesh uncordon` ends the drain (the VIPs do not come back: placement is sticky).
 */
export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('drain')
    .description('cordon nodes and move their VIPs to other nodes (make-before-break); uncordon ends it')
    .argument('<nodes...>', 'the nodes')
    .option('--timeout <duration>', 'how long to wait for the VIPs to move (0 = do not wait)', '30s');
  addConnectionOptions(cmd);
  cmd.action(async (names: string[]) => {
    const flags = cmd.opts<{ timeout: string }>();
    const timeoutMs = parseDuration(flags.timeout, '--timeout');
    const client = await connectFromFlags(cmd.opts());
    try {
      for (const name of names) {
        const before = vipsOf(await client.get('nodes', name));
        const changed = await setNodeMarks(
          (n) => client.get('nodes', n),
          (node) => client.update('nodes', node),
          name,
          { unschedulable: true, drain: true },
        );
        ctx.stdout.write(`node/${name} ${changed ? '' : 'already '}cordoned for draining\n`);
        if (timeoutMs === 0) continue;
        const deadline = Date.now() + timeoutMs;
        let left = vipsOf(await client.get('nodes', name));
        while (left.length > 0 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, POLL_MS));
          left = vipsOf(await client.get('nodes', name));
        }
        const moved = before.filter((v) => !left.includes(v)).length;
        if (left.length === 0) {
          ctx.stdout.write(`node/${name} drained (${moved} VIP${moved === 1 ? '' : 's'} moved)\n`);
          continue;
        }
        ctx.stderr.write(
          `node/${name}: still holds ${left.join(', ')} after ${flags.timeout} (no other Ready node may hold ${left.length === 1 ? 'it' : 'them'}, or the move is slow; see vipmesh describe node ${name})\n`,
        );
        ctx.exitCode = 1;
      }
    } finally {
      client.close();
    }
  });
}

/** The VIPs the API shows `node` holding (from the assignment keys). */
function vipsOf(node: Node): string[] {
  return [...(node.status?.vips ?? [])];
}
