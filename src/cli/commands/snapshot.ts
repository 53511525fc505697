import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { Etcd3 } from 'etcd3';
import { VipmeshError } from '../../errors.js';
import { datastoreDir, defaultDatastoreListen } from '../../server/index.js';
import {
  DEFAULT_RETENTION,
  defaultSnapshotDir,
  deleteSnapshots,
  listSnapshots,
  ON_DEMAND_NAME,
  pruneSnapshots,
  restoreSnapshot,
  type SnapshotEntry,
  saveSnapshot,
  snapshotName,
} from '../../snapshot/index.js';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../config.js';
import type { CliContext } from '../context.js';
import { addDataDirOption, nodeNameOf, positiveInt } from './node-options.js';

interface SnapshotFlags {
  dataDir: string;
  dir?: string;
  name: string;
  nodeName?: string;
  datastoreEndpoint?: string;
  datastoreCafile?: string;
  datastoreCertfile?: string;
  datastoreKeyfile?: string;
  output?: 'table' | 'json';
  snapshotRetention?: string;
}

/** How long the datastore may take to answer before `save` gives up on it. */
const CONNECT_TIMEOUT_MS = 5000;

function dirOf(f: SnapshotFlags): string {
  return f.dir ?? defaultSnapshotDir(f.dataDir);
}

/**
 * The server's config keys a `snapshot` subcommand takes (as k3s's etcd-snapshot reads k3s's config), with
 * the option each sets; the server's other keys are not the command's business and are ignored silently.
 */
const FROM_SERVER_CONFIG: Record<string, string> = {
  'data-dir': 'dataDir',
  'datastore-endpoint': 'datastoreEndpoint',
  'datastore-cafile': 'datastoreCafile',
  'datastore-certfile': 'datastoreCertfile',
  'datastore-keyfile': 'datastoreKeyfile',
  'node-name': 'nodeName',
  'snapshot-dir': 'dir',
  'snapshot-retention': 'snapshotRetention',
};

/** Fill the options not given on the command line from the server's config file. */
function applyServerConfig(cmd: Command): void {
  const path = cmd.getOptionValue('config') as string;
  const loaded = loadConfig(path, cmd.getOptionValueSource('config') !== 'default');
  const attrs = new Set(cmd.options.map((o) => o.attributeName()));
  for (const [key, attr] of Object.entries(FROM_SERVER_CONFIG)) {
    const v = loaded.values.get(key);
    if (v === undefined || !attrs.has(attr)) continue;
    const source = cmd.getOptionValueSource(attr);
    if (source === 'cli' || source === 'env') continue;
    cmd.setOptionValueWithSource(attr, String(v.value), 'config');
  }
}

/** The common flags of every `snapshot` subcommand. */
function common(cmd: Command): Command {
  addDataDirOption(cmd, "the server's data dir (its datastore socket and default snapshot dir)");
  return cmd
    .option('--dir <dir>', 'snapshot directory (default <data-dir>/server/db/snapshots)')
    .option('--node-name <name>', "this node's name in snapshot names (default: the hostname)")
    .addOption(
      new Option(
        '-c, --config <file>',
        "the server's config file: data-dir, datastore-endpoint, node-name, snapshot-dir and snapshot-retention are taken from it",
      )
        .env('VIPMESH_CONFIG')
        .default(DEFAULT_CONFIG_PATH),
    )
    .hook('preAction', (cmd) => applyServerConfig(cmd));
}

export function register(program: Command, ctx: CliContext): void {
  const snap = program
    .command('snapshot')
    .description(
      "save, list, prune and restore snapshots of the control plane's datastore (as k3s etcd-snapshot)",
    );

  common(snap.command('save'))
    .description('take a snapshot of the running datastore now (online: writers are not stopped)')
    .option('--name <name>', 'snapshot name prefix', ON_DEMAND_NAME)
    .option(
      '--datastore-endpoint <urls>',
      "the server's etcd (http://h1:2379,...); default: the embedded datastore's socket under --data-dir (root only)",
    )
    .option('--datastore-cafile <file>', "CA certificate of the etcd cluster's TLS (https:// endpoints)")
    .option('--datastore-certfile <file>', 'client certificate for etcd (with --datastore-keyfile)')
    .option('--datastore-keyfile <file>', 'client key for etcd')
    .action(async (f: SnapshotFlags) => {
      const name = snapshotName(f.name, nodeNameOf(f.nodeName), Date.now());
      const credentials = tlsOf(f);
      const external = f.datastoreEndpoint !== undefined && f.datastoreEndpoint !== '';
      const endpoint = external ? String(f.datastoreEndpoint) : defaultDatastoreListen(f.dataDir);
      const hosts = endpoint
        .split(',')
        .map((h) => h.trim())
        .filter(Boolean);
      const etcd = new Etcd3({ hosts, ...(credentials === undefined ? {} : { credentials }) });
      try {
        await reachable(etcd, endpoint, external);
        const saved = await saveSnapshot(etcd, join(dirOf(f), name), endpoint);
        ctx.stdout.write(`Snapshot ${name} saved (${saved.size} bytes, revision ${saved.revision})\n`);
      } finally {
        etcd.close();
      }
    });

  const ls = common(snap.command('ls'))
    .alias('list')
    .description('list the snapshots in the snapshot directory, newest first')
    .addOption(
      new Option('-o, --output <format>', 'table or json').choices(['table', 'json']).default('table'),
    )
    .action((f: SnapshotFlags) => {
      const all = listSnapshots(dirOf(f));
      ctx.stdout.write(f.output === 'json' ? `${JSON.stringify(all.map(asJson), null, 2)}\n` : table(all));
    });
  void ls;

  common(snap.command('delete'))
    .alias('rm')
    .description('delete the named snapshots')
    .argument('<name...>', 'snapshot names, as ls shows them')
    .action((names: string[], f: SnapshotFlags) => {
      deleteSnapshots(dirOf(f), names);
      for (const n of names) ctx.stdout.write(`Snapshot ${n} deleted\n`);
    });

  common(snap.command('prune'))
    .description("delete this node's snapshots of one name beyond the newest --snapshot-retention")
    .option('--name <name>', 'snapshot name prefix', ON_DEMAND_NAME)
    .option('--snapshot-retention <n>', 'snapshots to keep', String(DEFAULT_RETENTION))
    .action((f: SnapshotFlags) => {
      const keep = positiveInt(String(f.snapshotRetention), '--snapshot-retention');
      for (const n of pruneSnapshots(dirOf(f), f.name, nodeNameOf(f.nodeName), keep)) {
        ctx.stdout.write(`Snapshot ${n} deleted\n`);
      }
    });

  common(snap.command('restore'))
    .description(
      "replace the embedded datastore with a snapshot, the server stopped (a vipmesh or etcdctl snapshot of it, or a real etcd's)",
    )
    .argument('<file>', 'a snapshot file, or the name of one in the snapshot directory')
    .action(async (file: string, f: SnapshotFlags) => {
      const path = file.includes('/') || existsSync(file) ? resolve(file) : join(dirOf(f), file);
      const res = await restoreSnapshot({ file: path, dbDir: datastoreDir(f.dataDir), logger: ctx.logger() });
      ctx.stdout.write(
        `Snapshot ${path} restored into ${res.dataFile}${res.keys === undefined ? '' : ` (${res.keys} keys)`}` +
          `${res.previous === undefined ? '' : `; the previous data file is ${res.previous}`}\n`,
      );
    });
}

/** The etcd client's TLS material from `--datastore-cafile/-certfile/-keyfile`, or none. */
function tlsOf(
  f: SnapshotFlags,
): { rootCertificate: Buffer; certChain?: Buffer; privateKey?: Buffer } | undefined {
  if (f.datastoreCafile === undefined) {
    if (f.datastoreCertfile !== undefined || f.datastoreKeyfile !== undefined) {
      throw new VipmeshError(
        'VIPMESH_SNAPSHOT_BAD_FLAG',
        '--datastore-certfile and --datastore-keyfile need --datastore-cafile',
      );
    }
    return undefined;
  }
  if ((f.datastoreCertfile === undefined) !== (f.datastoreKeyfile === undefined)) {
    throw new VipmeshError(
      'VIPMESH_SNAPSHOT_BAD_FLAG',
      '--datastore-certfile and --datastore-keyfile go together',
    );
  }
  const read = (flag: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new VipmeshError('VIPMESH_SNAPSHOT_BAD_FLAG', `${flag} ${file}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  };
  return {
    rootCertificate: read('--datastore-cafile', f.datastoreCafile),
    ...(f.datastoreCertfile === undefined
      ? {}
      : { certChain: read('--datastore-certfile', f.datastoreCertfile) }),
    ...(f.datastoreKeyfile === undefined
      ? {}
      : { privateKey: read('--datastore-keyfile', f.datastoreKeyfile) }),
  };
}

/** Fail early, naming what was tried, when the datastore does not answer. */
async function reachable(etcd: Etcd3, endpoint: string, external: boolean): Promise<void> {
  try {
    await etcd.maintenance.status({ deadline: Date.now() + CONNECT_TIMEOUT_MS });
  } catch (err) {
    const hint = external
      ? 'is --datastore-endpoint right and the etcd cluster up?'
      : 'is the server running on this --data-dir, and are you root (the socket is 0600)?';
    throw new VipmeshError(
      'VIPMESH_SNAPSHOT_SAVE',
      `cannot reach the datastore at ${endpoint}: ${(err as Error).message}; ${hint}`,
      {
        cause: err,
        details: { endpoint },
      },
    );
  }
}

function asJson(s: SnapshotEntry): Record<string, unknown> {
  return { name: s.name, location: s.location, size: s.size, createdAt: s.createdAt.toISOString() };
}

function table(all: SnapshotEntry[]): string {
  const rows = [
    ['Name', 'Location', 'Size', 'Created'],
    ...all.map((s) => [s.name, s.location, String(s.size), s.createdAt.toISOString()]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) => `${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join(' ')}\n`)
    .join('');
}
