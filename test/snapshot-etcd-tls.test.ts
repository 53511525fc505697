/**
 * `vipmesh snapshot save` against an etcd that serves TLS and wants client certificates (certificates made
 * with openssl for the test): with `--datastore-cafile/-certfile/-keyfile` it saves a snapshot that
 * `vipmesh snapshot restore` takes; without the client certificate it fails naming the endpoint.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { run } from '../src/cli/program.js';
import { silentLogger } from '../src/log.js';
import { captureCli } from '../src/testing/cli.js';
import { freePort } from '../src/testing/datastores.js';
import { tempDir } from '../src/testing/tmp.js';
import { until } from '../src/testing/until.js';

async function cli(...args: string[]) {
  const ctx = captureCli(silentLogger);
  const code = await run(args, ctx);
  return { code, out: ctx.out(), err: ctx.err() };
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`. */
function certificates(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=test-ca',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
  );
  writeFileSync(
    join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    ssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      `/CN=${who}`,
      '-keyout',
      `${who}.key`,
      '-out',
      `${who}.csr`,
    );
    ssl(
      'x509',
      '-req',
      '-in',
      `${who}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      `${who}.ext`,
      '-out',
      `${who}.crt`,
    );
  }
}

t.test('save over TLS with client certificates, then restore', async (t) => {
  const dir = tempDir('vipmesh-snap-tls-');
  certificates(dir);
  const [client, peer] = [await freePort(), await freePort()];
  const url = `https://127.0.0.1:${client}`;
  const etcd: ChildProcess = spawn(
    'etcd',
    [
      '--name=tls',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=tls=http://127.0.0.1:${peer}`,
      `--cert-file=${join(dir, 'server.crt')}`,
      `--key-file=${join(dir, 'server.key')}`,
      `--trusted-ca-file=${join(dir, 'ca.crt')}`,
      '--client-cert-auth',
      '--log-level=error',
    ],
    { stdio: 'ignore' },
  );
  const gone = new Promise((r) => etcd.once('exit', r));
  t.teardown(async () => {
    etcd.kill('SIGKILL');
    await gone;
  });
  const tls = [
    '--datastore-cafile',
    join(dir, 'ca.crt'),
    '--datastore-certfile',
    join(dir, 'client.crt'),
    '--datastore-keyfile',
    join(dir, 'client.key'),
  ];
  const snaps = join(dir, 'snaps');
  const common = [
    '--datastore-endpoint',
    url,
    '--dir',
    snaps,
    '--node-name',
    'n1',
    '--config',
    join(dir, 'none.yaml'),
  ];
  writeFileSync(join(dir, 'none.yaml'), '');
  // The first save that succeeds is the one: etcd is serving by then.
  const saved = await until(
    'a snapshot over TLS',
    async () => {
      const r = await cli('snapshot', 'save', ...common, ...tls);
      if (r.code !== 0) throw new Error(r.err);
      return r.out;
    },
    { retryErrors: true, timeoutMs: 30_000, stepMs: 200 },
  );
  t.match(saved, /^Snapshot on-demand-n1-\d+ saved/);
  const name = /Snapshot (\S+) saved/.exec(saved)![1]!;
  const restored = await cli('snapshot', 'restore', join(snaps, name), '--data-dir', join(dir, 'restored'));
  t.equal(restored.code, 0, restored.err);

  const noCert = await cli('snapshot', 'save', ...common, '--datastore-cafile', join(dir, 'ca.crt'));
  t.equal(noCert.code, 1);
  t.match(noCert.err, new RegExp(`cannot reach the datastore at ${url}|Maintenance.Snapshot from ${url}`));
  const half = await cli(
    'snapshot',
    'save',
    ...common,
    '--datastore-cafile',
    join(dir, 'ca.crt'),
    '--datastore-keyfile',
    join(dir, 'client.key'),
  );
  t.match(half.err, /go together \(VIPMESH_SNAPSHOT_BAD_FLAG\)/);
  const noCa = await cli('snapshot', 'save', ...common, '--datastore-certfile', join(dir, 'client.crt'));
  t.match(noCa.err, /need --datastore-cafile/);
  const missing = await cli('snapshot', 'save', ...common, '--datastore-cafile', join(dir, 'nope.crt'));
  t.match(missing.err, /--datastore-cafile \S+nope\.crt: ENOENT/);
});
