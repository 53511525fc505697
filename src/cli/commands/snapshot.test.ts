import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { silentLogger } from '../../log.js';
import { captureCli } from '../../testing/cli.js';
import { tempDir } from '../../testing/tmp.js';
import { run } from '../program.js';

async function cli(...args: string[]) {
  const ctx = captureCli(silentLogger);
  const code = await run(args, ctx);
  return { code, out: ctx.out(), err: ctx.err() };
}

t.test('ls, prune, delete and restore by name in the snapshot directory', async (t) => {
  const data = tempDir('vipmesh-snapcli-');
  const dir = join(data, 'server', 'db', 'snapshots');
  t.match((await cli('snapshot', 'ls', '--data-dir', data)).out, /^Name +Location +Size +Created\n$/);
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
  for (let i = 1; i <= 3; i++) writeFileSync(join(dir, `on-demand-n1-170000000${i}`), 'x'.repeat(i));
  const ls = await cli('snapshot', 'list', '--data-dir', data);
  t.match(
    ls.out,
    /on-demand-n1-1700000003 +file:\/\/\S+on-demand-n1-1700000003 +3 +2023-11-14T22:13:23.000Z/,
  );
  t.same(
    (await cli('snapshot', 'prune', '--data-dir', data, '--node-name', 'n1', '--snapshot-retention', '2'))
      .out,
    'Snapshot on-demand-n1-1700000001 deleted\n',
  );
  const gone = await cli('snapshot', 'delete', '--dir', dir, 'on-demand-n1-1700000009');
  t.equal(gone.code, 1);
  t.match(gone.err, /VIPMESH_SNAPSHOT_NOT_FOUND/);
  t.same(
    (await cli('snapshot', 'rm', '--dir', dir, 'on-demand-n1-1700000002')).out,
    'Snapshot on-demand-n1-1700000002 deleted\n',
  );
  const bad = await cli('snapshot', 'restore', '--data-dir', data, 'on-demand-n1-1700000003');
  t.equal(bad.code, 1);
  t.match(bad.err, /snapshot \S+on-demand-n1-1700000003: .*truncated\? \(VIPMESH_SNAPSHOT_INVALID\)/);
});

t.test('save names the socket it tried when no server runs', async (t) => {
  const data = tempDir('vipmesh-snapcli-');
  const r = await cli('snapshot', 'save', '--data-dir', data);
  t.equal(r.code, 1);
  t.match(
    r.err,
    new RegExp(`cannot reach the datastore at unix://${data}/server/db/kine.sock.*is the server running`),
  );
  const bad = await cli('snapshot', 'save', '--data-dir', data, '--name', '../x');
  t.match(bad.err, /VIPMESH_SNAPSHOT_BAD_NAME/);
});

t.test('vipmesh server refuses a bad snapshot schedule or retention before starting anything', async (t) => {
  const data = tempDir('vipmesh-snapcli-');
  const cron = await cli('server', '--data-dir', data, '--snapshot-schedule', '61 * * * *');
  t.equal(cron.code, 1);
  t.match(
    cron.err,
    /--snapshot-schedule "61 \* \* \* \*" minute "61" is outside 0-59 \(VIPMESH_SNAPSHOT_BAD_FLAG\)/,
  );
  const keep = await cli('server', '--data-dir', data, '--snapshot-retention', '0');
  t.match(keep.err, /--snapshot-retention/);
});

t.test(
  "the server's config file gives the data dir, the snapshot dir and the endpoint; flags win",
  async (t) => {
    const data = tempDir('vipmesh-snapcli-');
    const snaps = join(data, 'elsewhere');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(snaps);
    writeFileSync(join(snaps, 'on-demand-n1-1700000001'), 'x');
    const config = join(data, 'config.yaml');
    writeFileSync(
      config,
      `data-dir: ${data}\nsnapshot-dir: ${snaps}\ndatastore-endpoint: http://127.0.0.1:9\nhttps-listen-port: 6443\n`,
    );
    const ls = await cli('snapshot', 'ls', '--config', config, '-o', 'json');
    t.equal(ls.err, '', 'no warning for the server keys');
    t.match(JSON.parse(ls.out), [{ name: 'on-demand-n1-1700000001' }]);
    t.same(
      JSON.parse((await cli('snapshot', 'ls', '--config', config, '--dir', data, '-o', 'json')).out),
      [],
    );
    const save = await cli('snapshot', 'save', '--config', config);
    t.match(
      save.err,
      /cannot reach the datastore at http:\/\/127\.0\.0\.1:9: .*is --datastore-endpoint right/,
    );
    const missing = await cli('snapshot', 'ls', '--config', join(data, 'nope.yaml'));
    t.match(missing.err, /VIPMESH_CONFIG_MISSING/);
  },
);
