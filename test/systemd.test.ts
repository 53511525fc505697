import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

const haveAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const root = process.getuid?.() === 0;

t.test(
  'systemd-analyze verify accepts both units',
  { skip: haveAnalyze && root ? false : 'needs root and systemd-analyze' },
  async (t) => {
    // Verify the units as installed: ExecStart points at /usr/local/bin/vipmesh, which a private mount
    // namespace provides (nothing on the host changes).
    const script =
      'mount -t tmpfs none /usr/local/bin && printf "#!/bin/sh\\n" > /usr/local/bin/vipmesh && ' +
      'chmod +x /usr/local/bin/vipmesh && systemd-analyze verify --man=no systemd/vipmesh-server.service systemd/vipmesh-agent.service';
    const r = spawnSync('unshare', ['-m', 'sh', '-c', script], { encoding: 'utf8' });
    t.equal(r.status, 0, `verify passes: ${r.stderr}`);
    t.equal(r.stderr.trim(), '', 'no warnings');
  },
);

t.test('the units ask for what the issue says and nothing more', async (t) => {
  for (const unit of ['vipmesh-server', 'vipmesh-agent']) {
    const text = readFileSync(`systemd/${unit}.service`, 'utf8');
    t.match(text, /^Type=notify$/m, `${unit}: Type=notify`);
    t.match(text, /^Restart=always$/m, `${unit}: Restart=always`);
    t.match(text, /^EnvironmentFile=-\/etc\/default\/%N$/m, `${unit}: EnvironmentFile`);
    t.match(
      text,
      /^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE$/m,
      `${unit}: capabilities`,
    );
    t.match(text, /^ProtectSystem=strict$/m, `${unit}: ProtectSystem`);
  }
});

t.test('install.sh: agent when VIPMESH_URL is set, server otherwise', async (t) => {
  const stage = mkdtempSync(join(tmpdir(), 'vipmesh-install-'));
  const env = { ...process.env, INSTALL_VIPMESH_ROOT: stage, INSTALL_VIPMESH_SKIP_NPM: 'true' };
  const token = `K10${'ab'.repeat(32)}::server:s3cret`;
  execFileSync('sh', ['scripts/install.sh'], {
    env: { ...env, VIPMESH_URL: 'https://198.51.100.10:6443', VIPMESH_TOKEN: token },
    stdio: 'pipe',
  });
  const agentEnv = join(stage, 'etc/default/vipmesh-agent');
  t.match(readFileSync(agentEnv, 'utf8'), `VIPMESH_TOKEN=${token}`);
  t.equal(statSync(agentEnv).mode & 0o777, 0o600, 'the token file is private');
  t.ok(statSync(join(stage, 'etc/systemd/system/vipmesh-agent.service')).isFile());

  const s = spawnSync('sh', ['scripts/install.sh'], {
    env: { ...env, INSTALL_VIPMESH_EXEC: '--node-ip 198.51.100.10' },
    encoding: 'utf8',
  });
  t.equal(s.status, 0);
  t.match(
    readFileSync(join(stage, 'etc/default/vipmesh-server'), 'utf8'),
    'VIPMESH_ARGS=--node-ip 198.51.100.10',
  );

  const bad = spawnSync('sh', ['scripts/install.sh'], {
    env: { ...env, VIPMESH_URL: 'https://198.51.100.10:6443', VIPMESH_TOKEN: 'nope' },
    encoding: 'utf8',
  });
  t.equal(bad.status, 1);
  t.match(bad.stderr, /must be a join token/);
});
