#!/usr/bin/env node
/**
 * Install-time setup of vipmesh's two native parts, without a compiler when a prebuilt binary fits.
 *
 *   node install/native.mjs stage-sqlite   (the package's preinstall script)
 *   node install/native.mjs addon          (the package's install script)
 *
 * stage-sqlite: npm runs every preinstall script of a tree before any install script, so this copies the
 * better-sqlite3 prebuilt made for this machine (prebuilds/linux-<arch>/better-sqlite3-v<version>-node-v<abi>-
 * linux-<arch>.tar.gz) into better-sqlite3's own prebuilds/ folder, where its install script (prebuild-install)
 * looks before it tries to download or compile. Nothing is staged when the versions, ABI or arch do not match;
 * better-sqlite3 then installs as it would without vipmesh's help.
 *
 * addon: loads prebuilds/linux-<arch>/packet.node (the native addon: AF_PACKET sockets and the liveness thread,
 * N-API 8); when it loads, nothing is
 * compiled. Otherwise, and always in a source checkout (src/ present), it runs `node-gyp rebuild`, which needs g++,
 * make and python3.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(join(root, 'package.json'));
const platformDir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);

/** The name prebuild-install looks for: better-sqlite3-v<version>-node-v<abi>-<platform>-<arch>.tar.gz. */
function sqlitePrebuildName(version, abi = process.versions.modules, arch = process.arch) {
  return `better-sqlite3-v${version}-node-v${abi}-${process.platform}-${arch}.tar.gz`;
}

function log(message) {
  process.stderr.write(`vipmesh install: ${message}\n`);
}

function stageSqlite() {
  let pkgPath;
  try {
    pkgPath = require.resolve('better-sqlite3/package.json');
  } catch {
    log('better-sqlite3 is not installed next to vipmesh; nothing to stage');
    return;
  }
  const { version } = JSON.parse(readFileSync(pkgPath, 'utf8'));
  const name = sqlitePrebuildName(version);
  const from = join(platformDir, name);
  if (!existsSync(from)) {
    log(`no bundled ${name}; better-sqlite3 will download or compile its binary`);
    return;
  }
  const toDir = join(dirname(pkgPath), 'prebuilds');
  mkdirSync(toDir, { recursive: true });
  copyFileSync(from, join(toDir, basename(from)));
  log(`staged ${name} for better-sqlite3 (no download, no compiler)`);
}

function addon() {
  if (existsSync(join(root, 'src', 'arp', 'packet-socket.ts'))) {
    log('a source checkout: compiling the native addon so that edited C++ is what runs');
    return compile();
  }
  const prebuilt = join(platformDir, 'packet.node');
  if (existsSync(prebuilt)) {
    try {
      require(prebuilt);
      log(`using the prebuilt native addon ${prebuilt}`);
      return;
    } catch (err) {
      log(`the prebuilt ${prebuilt} does not load (${err.message}); compiling instead`);
    }
  } else {
    log(
      `no prebuilt native addon for ${process.platform}-${process.arch}; compiling (needs g++, make, python3)`,
    );
  }
  compile();
}

function compile() {
  const gyp = spawnSync('node-gyp', ['rebuild'], { cwd: root, stdio: 'inherit', shell: false });
  if (gyp.error !== undefined) {
    log(`could not run node-gyp: ${gyp.error.message}`);
    process.exit(1);
  }
  process.exit(gyp.status ?? 1);
}

const step = process.argv[2];
if (step === 'stage-sqlite') stageSqlite();
else if (step === 'addon') addon();
else {
  log(`unknown step ${JSON.stringify(step)} (use stage-sqlite or addon)`);
  process.exit(2);
}
