import type { Command } from 'commander';
import { VipmeshError } from '../../errors.js';
import { type CompactionOptions, startDatastore } from '../../kine/index.js';
import { createRegistry } from '../../metrics.js';
import { DEFAULT_DATA_DIR } from '../../paths.js';
import { parseDuration } from '../../util/duration.js';
import { type CliContext, daemonCommand } from '../context.js';

interface KineFlags {
  listenAddress: string;
  dataDir: string;
  dataFile?: string;
  autoCompactionMode: string;
  autoCompactionRetention: string;
  compactionInterval?: string;
  watchProgressNotifyInterval: string;
  name: string;
}

/** Turn the etcd-style compaction flags into {@link CompactionOptions}. */
export function compactionFromFlags(mode: string, retention: string, interval?: string): CompactionOptions {
  if (mode !== 'revision' && mode !== 'periodic') {
    throw new VipmeshError(
      'VIPMESH_KINE_BAD_FLAG',
      `--auto-compaction-mode must be "revision" or "periodic", not "${mode}"`,
    );
  }
  let keep: number;
  if (mode === 'revision') {
    keep = Number(retention);
    if (!Number.isInteger(keep) || keep < 0) {
      throw new VipmeshError(
        'VIPMESH_KINE_BAD_FLAG',
        `--auto-compaction-retention must be a number of revisions in revision mode, not "${retention}"`,
      );
    }
  } else {
    // etcd takes a bare number as hours in periodic mode.
    keep = /^\d+$/.test(retention)
      ? Number(retention) * 3_600_000
      : parseDuration(retention, '--auto-compaction-retention');
  }
  const out: CompactionOptions =
    mode === 'revision' ? { mode, retentionRevisions: keep } : { mode, retentionMs: keep };
  if (interval !== undefined) out.intervalMs = parseDuration(interval, '--compaction-interval');
  return out;
}

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('kine')
    .description('run the etcd v3 compatible datastore (SQLite) on its own')
    .option(
      '--listen-address <addr>',
      'host:port or unix:///path to serve the etcd v3 API on',
      '127.0.0.1:2379',
    )
    .option('--data-dir <dir>', 'directory of the data file', `${DEFAULT_DATA_DIR}/db`)
    .option('--data-file <file>', 'the SQLite data file (default <data-dir>/state.db)')
    .option('--auto-compaction-mode <mode>', 'revision or periodic (as etcd)', 'revision')
    .option(
      '--auto-compaction-retention <n>',
      'revisions to keep (revision mode) or history to keep, e.g. 1h (periodic mode); 0 disables',
      '1000',
    )
    .option(
      '--compaction-interval <duration>',
      'how often auto-compaction runs (default 5m; periodic: retention/10)',
    )
    .option(
      '--watch-progress-notify-interval <duration>',
      "interval of progress notifications to watchers that asked for them (etcd's --experimental-watch-progress-notify-interval)",
      '10m',
    )
    .option('--name <name>', 'member name reported by member list', 'default')
    .action(async (flags: KineFlags) => {
      const log = ctx.logger().child({ module: 'kine' });
      const compaction = compactionFromFlags(
        flags.autoCompactionMode,
        flags.autoCompactionRetention,
        flags.compactionInterval,
      );
      const progressIntervalMs = parseDuration(
        flags.watchProgressNotifyInterval,
        '--watch-progress-notify-interval',
      );
      if (progressIntervalMs <= 0) {
        throw new VipmeshError(
          'VIPMESH_KINE_BAD_FLAG',
          `--watch-progress-notify-interval must be above 0, not "${flags.watchProgressNotifyInterval}"`,
        );
      }
      const ds = await startDatastore({
        dataDir: flags.dataDir,
        ...(flags.dataFile !== undefined ? { dataFile: flags.dataFile } : {}),
        listenAddress: flags.listenAddress,
        compaction,
        watch: { progressIntervalMs },
        name: flags.name,
        logger: log,
        registry: createRegistry(),
      });
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          process.off('SIGTERM', onTerm);
          process.off('SIGINT', onInt);
          log.info({ signal }, 'shutting down');
          ds.close().then(resolve, resolve);
        };
        const onTerm = () => stop('SIGTERM');
        const onInt = () => stop('SIGINT');
        process.on('SIGTERM', onTerm);
        process.on('SIGINT', onInt);
      });
    });
  daemonCommand(cmd);
}
