#!/usr/bin/env node
/**
 * Makes vipmesh-<version>.tgz, a tarball that installs with no network and no compiler on linux x64, arm64 and
 * armv7: it bundles every runtime dependency (package.json has bundleDependencies: true) and the binaries from
 * `npm run build:prebuilds`.
 *
 * A plain `npm pack` in a developer's tree would bundle that tree's node_modules as they are, with
 * better-sqlite3's x64 build products (about 17 MB). So the package's "files" are copied to a staging folder,
 * its runtime dependencies are installed there from the npm cache without running their scripts (pristine
 * packages, no build/), and `npm pack` runs there. dist/ is rebuilt first. Prints the tarball's path.
 *
 *   node scripts/pack-offline.mjs [--destination DIR]   (default: the repository root)
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const destArg = process.argv.indexOf('--destination');
const destination = destArg >= 0 ? resolve(process.argv[destArg + 1]) : root;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

for (const arch of ['x64', 'arm64', 'arm']) {
  if (!existsSync(join(root, 'prebuilds', `linux-${arch}`, 'packet.node'))) {
    console.error(`pack-offline: prebuilds/linux-${arch} is missing: run npm run build:prebuilds first`);
    process.exit(1);
  }
}

function npm(args, cwd) {
  const r = spawnSync('npm', args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed (exit ${r.status})`);
  return r.stdout;
}

npm(['run', 'build'], root); // dist/ as the sources are now
const stage = mkdtempSync(join(tmpdir(), 'vipmesh-pack-'));
try {
  for (const entry of ['package.json', 'package-lock.json', 'README.md', 'LICENSE', ...pkg.files]) {
    const from = join(root, entry);
    if (existsSync(from)) cpSync(from, join(stage, entry), { recursive: true });
  }
  npm(['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], stage);
  const out = npm(['pack', '--json', '--pack-destination', destination], stage);
  const [{ filename }] = JSON.parse(out);
  console.log(join(destination, filename));
} finally {
  rmSync(stage, { recursive: true, force: true });
}
