#!/usr/bin/env node
/**
 * Builds the binaries shipped in prebuilds/ so that installing vipmesh on linux x64, arm64 or armv7 needs no
 * compiler:
 *   prebuilds/linux-<arch>/packet.node                     the native addon: AF_PACKET sockets and the liveness
 *                                                          thread (N-API 8: any Node >= 20)
 *   prebuilds/linux-<arch>/better-sqlite3-v<v>-node-v<abi>-linux-<arch>.tar.gz
 *                                                          better-sqlite3's addon for this Node's ABI, in the
 *                                                          layout its prebuild-install unpacks
 * arm64 and armv7 are cross-compiled with Debian's aarch64-linux-gnu / arm-linux-gnueabihf g++ against the
 * headers of the Node running this script (--nodedir), so nothing is downloaded.
 *
 *   node scripts/prebuild.mjs [--if-missing] [--arch x64,arm64,arm]
 * --if-missing skips an arch whose two files exist. An arch whose cross compiler is absent is skipped with a
 * message unless --require is given (CI passes it).
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const args = process.argv.slice(2);
const ifMissing = args.includes('--if-missing');
const requireAll = args.includes('--require');
const archArg = args.indexOf('--arch');
const arches = archArg >= 0 ? args[archArg + 1].split(',') : ['x64', 'arm64', 'arm'];

/** The GNU triplet prefix of the compiler for each Node arch ('' = this machine's own gcc, on x64). */
const toolPrefix = {
  x64: process.arch === 'x64' ? '' : 'x86_64-linux-gnu-',
  arm64: 'aarch64-linux-gnu-',
  arm: 'arm-linux-gnueabihf-',
};
const nodedir = dirname(dirname(process.execPath));
const nodeGyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const sqliteDir = join(root, 'node_modules', 'better-sqlite3');
const sqliteVersion = JSON.parse(readFileSync(join(sqliteDir, 'package.json'), 'utf8')).version;

/** Run a command; its output is kept and printed only when it fails (the arches build side by side). */
function run(cmd, argv, opts) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${argv.join(' ')} failed (exit ${code}):\n${out}`));
    });
  });
}

function hasTool(name) {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** node-gyp rebuild in `dir` for `arch` with the matching (cross) compiler. */
async function gyp(dir, arch, extra = []) {
  const p = toolPrefix[arch];
  const env = { ...process.env, CC: `${p}gcc`, CXX: `${p}g++`, LINK: `${p}g++`, AR: `${p}ar` };
  await run(
    process.execPath,
    [nodeGyp, 'rebuild', '--release', `--arch=${arch}`, `--nodedir=${nodedir}`, ...extra],
    {
      cwd: dir,
      env,
    },
  );
}

async function buildArch(arch) {
  const out = join(root, 'prebuilds', `linux-${arch}`);
  const addon = join(out, 'packet.node');
  const sqliteName = `better-sqlite3-v${sqliteVersion}-node-v${process.versions.modules}-linux-${arch}.tar.gz`;
  const sqlite = join(out, sqliteName);
  if (ifMissing && existsSync(addon) && existsSync(sqlite)) {
    console.log(`prebuild: ${arch}: present, kept`);
    return;
  }
  if (!hasTool(`${toolPrefix[arch]}g++`)) {
    const msg = `prebuild: ${arch}: ${toolPrefix[arch]}g++ is not installed`;
    if (requireAll) throw new Error(msg);
    console.log(`${msg}; skipped`);
    return;
  }
  mkdirSync(out, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), `vipmesh-prebuild-${arch}-`));
  try {
    const addonDir = join(work, 'addon');
    mkdirSync(addonDir, { recursive: true });
    cpSync(join(root, 'binding.gyp'), join(addonDir, 'binding.gyp'));
    for (const dir of ['arp', 'tunnel']) {
      cpSync(join(root, 'src', dir, 'native'), join(addonDir, 'src', dir, 'native'), { recursive: true });
    }
    symlinkSync(join(root, 'node_modules'), join(addonDir, 'node_modules'));
    await gyp(addonDir, arch);
    cpSync(join(addonDir, 'build', 'Release', 'packet.node'), addon);

    const sqliteWork = join(work, 'better-sqlite3');
    cpSync(sqliteDir, sqliteWork, {
      recursive: true,
      filter: (src) => !src.startsWith(join(sqliteDir, 'build')),
    });
    await gyp(sqliteWork, arch);
    await run('tar', ['czf', sqlite, '-C', sqliteWork, 'build/Release/better_sqlite3.node']);
    console.log(`prebuild: ${arch}: ${addon} and ${sqlite}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

for (const arch of arches) {
  if (!(arch in toolPrefix)) throw new Error(`prebuild: unknown arch ${arch} (x64, arm64 or arm)`);
}
// Side by side: each build is mostly one long compile of sqlite3.c, so the arches share the cores best.
const results = await Promise.allSettled(arches.map((arch) => buildArch(arch)));
const failed = results.filter((r) => r.status === 'rejected');
for (const r of failed) console.error(`prebuild: ${r.reason.message}`);
if (failed.length > 0) process.exit(1);
