import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { writeAdminConfig } from '../api/index.js';
import { silentLogger } from '../log.js';
import { ensureServerCredentials } from '../pki/index.js';
import { captureCli } from '../testing/cli.js';
import { run } from './program.js';

const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kubeconfig-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const ctx = captureCli(silentLogger);
  const code = await run(argv, ctx);
  return { code, out: ctx.out(), err: ctx.err() };
}

interface Kc {
  clusters: Array<{ cluster: Record<string, string> }>;
  users: Array<{ user: { token: string } }>;
}

t.test('vipmesh kubeconfig prints the CA and admin token of a data directory, for a given URL', async (t) => {
  const data = join(dir, 'data');
  const c = await ensureServerCredentials(data);
  const none = join(dir, 'none.yaml');
  const given = await cli([
    'kubeconfig',
    '--data-dir',
    data,
    '--server',
    'https://198.51.100.7:6443',
    '--admin-config',
    none,
  ]);
  t.equal(given.code, 0, given.err);
  const kc = parseYaml(given.out) as Kc;
  t.equal(kc.clusters[0]!.cluster['server'], 'https://198.51.100.7:6443');
  t.equal(
    Buffer.from(kc.clusters[0]!.cluster['certificate-authority-data']!, 'base64').toString(),
    c.caCertPem,
  );
  t.equal(kc.users[0]!.user.token, c.adminToken);
  // No --server: the admin config's URL, else loopback on the default port.
  t.equal(
    (parseYaml((await cli(['kubeconfig', '--data-dir', data, '--admin-config', none])).out) as Kc)
      .clusters[0]!.cluster['server'],
    'https://127.0.0.1:6443',
  );
  const admin = join(dir, 'admin.yaml');
  writeAdminConfig(admin, {
    server: 'https://198.51.100.8:7443',
    token: c.adminToken,
    caCertPem: c.caCertPem,
  });
  t.equal(
    (parseYaml((await cli(['kubeconfig', '--data-dir', data, '--admin-config', admin])).out) as Kc)
      .clusters[0]!.cluster['server'],
    'https://198.51.100.8:7443',
  );
  // Not on a server: the missing credentials are named.
  const off = await cli(['kubeconfig', '--data-dir', join(dir, 'nothing')]);
  t.equal(off.code, 1);
  t.match(off.err, /VIPMESH_CREDENTIALS_MISSING/);
});
