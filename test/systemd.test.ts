import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
      /^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE CAP_SYS_NICE$/m,
      `${unit}: capabilities`,
    );
    t.match(text, /^ProtectSystem=strict$/m, `${unit}: ProtectSystem`);
    t.match(
      text,
      /^Environment="NODE_OPTIONS=--max-semi-space-size=1"\nEnvironmentFile=-\/etc\/default\/%N$/m,
      `${unit}: a small young generation, which /etc/default/${unit} may override`,
    );
    t.match(
      text,
      /^Environment="VIPMESH_V8_FLAGS=--heap-growing-percent=50"$/m,
      `${unit}: an old generation that grows by half at most`,
    );
    t.match(text, /^Environment="MALLOC_TRIM_THRESHOLD_=131072"$/m, `${unit}: glibc trims its arenas`);
  }
});

/** A staging root holding an unpacked package (only its entry point: nothing runs it here). */
function stageRoot(): string {
  const stage = mkdtempSync(join(tmpdir(), 'vipmesh-install-'));
  const main = join(stage, 'usr/local/lib/node_modules/vipmesh/dist/cli/main.js');
  mkdirSync(join(main, '..'), { recursive: true });
  writeFileSync(main, '#!/usr/bin/env node\n');
  return stage;
}

t.test('install.sh: agent when VIPMESH_URL is set, server otherwise', async (t) => {
  const stage = stageRoot();
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

  const serverStage = stageRoot();
  const s = spawnSync('sh', ['scripts/install.sh'], {
    env: { ...env, INSTALL_VIPMESH_ROOT: serverStage, INSTALL_VIPMESH_EXEC: '--node-ip 198.51.100.10' },
    encoding: 'utf8',
  });
  t.equal(s.status, 0);
  t.match(
    readFileSync(join(serverStage, 'etc/default/vipmesh-server'), 'utf8'),
    'VIPMESH_ARGS=--node-ip 198.51.100.10',
  );

  const bad = spawnSync('sh', ['scripts/install.sh'], {
    env: { ...env, VIPMESH_URL: 'https://198.51.100.10:6443', VIPMESH_TOKEN: 'nope' },
    encoding: 'utf8',
  });
  t.equal(bad.status, 1);
  t.match(bad.stderr, /must be a join token/);
});

t.test(
  'install.sh: a re-install keeps the role, URL, token and flags unless new ones are given',
  async (t) => {
    const stage = stageRoot();
    const env = { ...process.env, INSTALL_VIPMESH_ROOT: stage, INSTALL_VIPMESH_SKIP_NPM: 'true' };
    const token = `K10${'cd'.repeat(32)}::server:again`;
    const agentEnv = join(stage, 'etc/default/vipmesh-agent');
    execFileSync('sh', ['scripts/install.sh'], {
      env: {
        ...env,
        VIPMESH_URL: 'https://198.51.100.10:6443',
        VIPMESH_TOKEN: token,
        INSTALL_VIPMESH_EXEC: '--node-ip 198.51.100.11 --node-label role=edge',
      },
      stdio: 'pipe',
    });
    const again = execFileSync('sh', ['scripts/install.sh'], { env, encoding: 'utf8' });
    t.match(again, 'installing vipmesh as agent', 'still an agent without VIPMESH_URL');
    const text = readFileSync(agentEnv, 'utf8');
    t.match(text, 'VIPMESH_URL=https://198.51.100.10:6443');
    t.match(text, `VIPMESH_TOKEN=${token}`);
    t.match(text, 'VIPMESH_ARGS=--node-ip 198.51.100.11 --node-label role=edge', 'the flags are kept');
    execFileSync('sh', ['scripts/install.sh'], {
      env: { ...env, INSTALL_VIPMESH_EXEC: '--node-ip 198.51.100.12' },
      stdio: 'pipe',
    });
    t.match(readFileSync(agentEnv, 'utf8'), /^VIPMESH_ARGS=--node-ip 198\.51\.100\.12$/m, 'new flags win');
    for (const bin of ['vipmesh', 'vipmesh-killall.sh', 'vipmesh-uninstall.sh']) {
      t.ok(statSync(join(stage, 'usr/local/bin', bin)), `/usr/local/bin/${bin} is installed`);
    }
  },
);

t.test('install.sh: INSTALL_VIPMESH_VERSION installs that version under /usr/local', async (t) => {
  const stage = stageRoot();
  // A stand-in npm on PATH records what the installer asked of it.
  const fake = mkdtempSync(join(tmpdir(), 'vipmesh-npm-'));
  writeFileSync(join(fake, 'npm'), `#!/bin/sh\necho "$@" > ${fake}/argv\n`);
  chmodSync(join(fake, 'npm'), 0o755);
  const env = {
    ...process.env,
    PATH: `${fake}:${process.env.PATH}`,
    INSTALL_VIPMESH_ROOT: stage,
    INSTALL_VIPMESH_VERSION: 'v0.2.0',
  };
  execFileSync('sh', ['scripts/install.sh'], { env, stdio: 'pipe' });
  t.equal(
    readFileSync(join(fake, 'argv'), 'utf8').trim(),
    `install -g --prefix ${stage}/usr/local --omit=dev --no-audit --no-fund vipmesh@0.2.0`,
  );
  execFileSync('sh', ['scripts/install.sh'], {
    env: { ...env, VIPMESH_PACKAGE: '/tmp/vipmesh-0.1.0.tgz' },
    stdio: 'pipe',
  });
  t.match(readFileSync(join(fake, 'argv'), 'utf8'), / \/tmp\/vipmesh-0\.1\.0\.tgz$/m, 'a local tarball wins');
  const skip = spawnSync('sh', ['scripts/install.sh'], {
    env: {
      ...env,
      INSTALL_VIPMESH_ROOT: mkdtempSync(join(tmpdir(), 'vipmesh-empty-')),
      INSTALL_VIPMESH_SKIP_NPM: 'true',
    },
    encoding: 'utf8',
  });
  t.equal(skip.status, 1, 'an air-gap install without the package fails');
  t.match(skip.stderr, /dist\/cli\/main\.js is missing/);
});

t.test('npm pack ships what the README runs from it, and the units document where it lands', async (t) => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const files = new Set(
    (JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path),
  );
  const readme = readFileSync('README.md', 'utf8');
  const run = [...readme.matchAll(/(?:^|\s)((?:scripts|config|systemd)\/[\w./-]+)/g)].map((m) => m[1]!);
  t.ok(run.includes('scripts/install.sh'), 'the README runs scripts/install.sh');
  for (const path of new Set(run)) {
    const clean = path.replace(/[.,)]+$/, '');
    if (clean.endsWith('/')) continue;
    t.ok(files.has(clean), `the package holds ${clean}`);
  }
  for (const f of [
    'scripts/vipmesh-uninstall.sh',
    'scripts/vipmesh-killall.sh',
    'docs/errors.md',
    'README.md',
  ]) {
    t.ok(files.has(f), `the package holds ${f}`);
  }
  for (const unit of ['vipmesh-server', 'vipmesh-agent']) {
    const doc = /^Documentation=(.*)$/m.exec(readFileSync(`systemd/${unit}.service`, 'utf8'))![1]!;
    for (const url of doc.split(' ')) {
      const rel = url.replace('file:///usr/local/lib/node_modules/vipmesh/', '');
      t.not(rel, url, `${unit}: ${url} is inside the installed package`);
      t.ok(files.has(rel), `${unit}: ${rel} is in the package`);
    }
  }
});
