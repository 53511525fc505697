import type { Command } from 'commander';
import { listMembers, localClient, removeMember } from '../../etcd-member/index.js';
import { DEFAULT_DATA_DIR } from '../../paths.js';
import type { CliContext } from '../context.js';

/**
 * `vipmesh etcd member list|remove NAME [--data-dir DIR]`: the members of the embedded etcd cluster, through
 * the local member of this server (run on a server, as root: the member's certificate is in the data dir).
 */
export function register(program: Command, ctx: CliContext): void {
  const etcd = program.command('etcd').description("the embedded etcd cluster of this server's data dir");
  const member = etcd.command('member').description('members of the embedded etcd cluster');
  member
    .command('list')
    .description('list the members: name, id, peer URL, started')
    .option('--data-dir <dir>', 'the server data directory', DEFAULT_DATA_DIR)
    .action(async (opts: { dataDir: string }) => {
      const client = localClient(opts.dataDir);
      try {
        for (const m of await listMembers(client)) {
          ctx.stdout.write(
            `${m.name || '-'}\t${m.id}\t${m.peerUrls.join(',')}\t${m.started ? 'started' : 'unstarted'}\n`,
          );
        }
      } finally {
        client.close();
      }
    });
  member
    .command('remove <name>')
    .description('remove a member (a server that is gone for good) so the others keep their quorum')
    .option('--data-dir <dir>', 'the server data directory', DEFAULT_DATA_DIR)
    .action(async (name: string, opts: { dataDir: string }) => {
      const client = localClient(opts.dataDir);
      try {
        const m = await removeMember(client, name);
        ctx.stdout.write(`removed etcd member ${m.name} (${m.id})\n`);
      } finally {
        client.close();
      }
    });
}
