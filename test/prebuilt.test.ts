/**
 * The package installs with no compiler and no network on linux x64, arm64 and armv7: the tarball from
 * scripts/pack-offline.mjs is installed (scripts run) into an empty prefix with an empty npm cache, --offline,
 * and a PATH holding only `node` and `sh`; for arm64 and armv7 that `node` is an official Node 20 arm build
 * run by qemu-user, so every install script (vipmesh's, better-sqlite3's prebuild-install, netlink's
 * node-gyp-build) runs on the emulated CPU. Then, with the same Node, the installed vipmesh opens an AF_PACKET
 * socket through its addon and an SQLite database through better-sqlite3.
 *
 * Needs `npm run build:prebuilds` (prebuilds/), `node scripts/arm-nodes.mjs` (.cache/arm-node) and qemu-user-static
 * with the Debian cross sysroots; .ci/run provides all of them, and under CI a missing piece is a failure.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import t from 'tap';
import { tempDir } from '../src/testing/tmp.js';

const root = dirname(import.meta.dirname);
const npmCli = join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
const sqliteVersion = (
  JSON.parse(readFileSync(join(root, 'node_modules', 'better-sqlite3', 'package.json'), 'utf8')) as {
    version: string;
  }
).version;

interface Target {
  arch: 'x64' | 'arm64' | 'arm';
  /** ELF e_machine and class (1 = 32-bit, 2 = 64-bit) of this CPU's binaries. */
  machine: number;
  elfClass: number;
  /** How to run this arch's Node: [program, ...args before the script's own]. */
  node: string[];
}

const TARGETS: Target[] = [
  { arch: 'x64', machine: 62, elfClass: 2, node: [process.execPath] },
  {
    arch: 'arm64',
    machine: 183,
    elfClass: 2,
    node: [
      '/usr/bin/qemu-aarch64-static',
      '-L',
      '/usr/aarch64-linux-gnu',
      join(root, '.cache/arm-node/arm64/node'),
    ],
  },
  {
    arch: 'arm',
    machine: 40,
    elfClass: 1,
    node: [
      '/usr/bin/qemu-arm-static',
      '-L',
      '/usr/arm-linux-gnueabihf',
      join(root, '.cache/arm-node/arm/node'),
    ],
  },
];

const prebuilt = (arch: string) => join(root, 'prebuilds', `linux-${arch}`);
const sqliteTarball = (arch: string) =>
  join(prebuilt(arch), `better-sqlite3-v${sqliteVersion}-node-v115-linux-${arch}.tar.gz`);

const missing = [
  ...TARGETS.flatMap((x) => x.node.filter((p) => p.startsWith('/') && !existsSync(p))),
  ...TARGETS.flatMap((x) => [join(prebuilt(x.arch), 'packet.node'), sqliteTarball(x.arch)]).filter(
    (p) => !existsSync(p),
  ),
  ...(existsSync(npmCli) ? [] : [npmCli]),
].map((p) => relative(root, p) || p);
const why =
  missing.length === 0
    ? false
    : `missing ${missing.join(', ')} (run npm run build:prebuilds and node scripts/arm-nodes.mjs; apt-get install qemu-user-static g++-aarch64-linux-gnu g++-arm-linux-gnueabihf)`;
if (why !== false && process.env['CI'] === 'true') {
  t.fail(`under CI the prebuilt binaries must be checked: ${why}`);
}
const skip = why;

/** ELF e_machine and class of a file. */
function elf(path: string): { machine: number; elfClass: number } {
  const b = readFileSync(path);
  if (b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${path} is not an ELF file`);
  return { machine: b.readUInt16LE(18), elfClass: b[4]! };
}

/** Every file below `dir`, relative to it. */
function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.once('close', (code) => resolve({ code, out }));
  });
}

t.test(
  'prebuilds/: the addon and better-sqlite3 for each arch are binaries for that CPU',
  { skip },
  async (t) => {
    for (const x of TARGETS) {
      t.same(
        elf(join(prebuilt(x.arch), 'packet.node')),
        { machine: x.machine, elfClass: x.elfClass },
        `${x.arch} addon`,
      );
      const dir = tempDir('vipmesh-sqlite-tgz-');
      t.equal(spawnSync('tar', ['xzf', sqliteTarball(x.arch), '-C', dir]).status, 0);
      t.same(
        files(dir),
        ['build/Release/better_sqlite3.node'],
        `${x.arch}: the layout prebuild-install unpacks`,
      );
      t.same(
        elf(join(dir, 'build/Release/better_sqlite3.node')),
        { machine: x.machine, elfClass: x.elfClass },
        `${x.arch} better-sqlite3`,
      );
    }
  },
);

/** Run inside the installed package by that arch's Node: the addon reaches the kernel and signs datagrams, SQLite works. */
const CHECK = `
const { PacketSocket } = await import(new URL('./dist/arp/packet-socket.js', 'file://' + process.cwd() + '/').href);
const { createRequire } = await import('node:module');
const Database = createRequire(process.cwd() + '/package.json')('better-sqlite3');
const db = new Database(':memory:');
db.exec('create table kv (k text primary key, v integer)');
db.prepare('insert into kv values (?, ?)').run('answer', 42);
const row = db.prepare('select k, v, sqlite_version() as version from kv').get();
let socket;
try { new PacketSocket('vmnope0', 'arp', () => {}); socket = 'opened?'; }
catch (err) { socket = { code: err.code, errno: err.details?.errno }; }
let lo = null;
if (process.getuid() === 0) { const s = new PacketSocket('lo', 'arp', () => {}); lo = s.ifindex; s.close(); }
const { LivenessHub } = await import(new URL('./dist/tunnel/liveness.js', 'file://' + process.cwd() + '/').href);
const hub = await LivenessHub.listen('127.0.0.1', 0);
const caller = LivenessHub.start();
const link = hub.expect({ intervalMs: 20, deadAfterMs: 60000 }, { armed() {}, lost() {} });
const liveness = await new Promise((res) => {
  const timer = setTimeout(() => res('no ack within 20 s'), 20000);
  caller.call('127.0.0.1', link.grant, { armed: () => { clearTimeout(timer); res('armed'); }, lost: () => res('lost') });
});
await hub.close(); await caller.close();
console.log('RESULT ' + JSON.stringify({ arch: process.arch, node: process.version, row, socket, lo, liveness }));
`;

t.test(
  'npm install of the packed tarball: offline, no compiler on PATH, scripts run on each CPU; then it works there',
  { skip },
  async (t) => {
    const work = tempDir('vipmesh-prebuilt-');
    const pack = await run(process.execPath, [join(root, 'scripts/pack-offline.mjs'), '--destination', work]);
    t.equal(pack.code, 0, pack.out);
    const tgz = pack.out.trim().split('\n').pop()!;

    await Promise.all(
      TARGETS.map(async (x) => {
        const base = join(work, x.arch);
        const bin = join(base, 'bin');
        mkdirSync(bin, { recursive: true });
        mkdirSync(join(base, 'prefix'));
        // The whole PATH of the install: this arch's node and a shell, nothing else (no g++, make, python3).
        const wrapper = x.node.map((a) => `'${a}'`).join(' ');
        writeFileSync(join(bin, 'node'), `#!/bin/sh\nexec ${wrapper} "$@"\n`, { mode: 0o755 });
        symlinkSync('/bin/sh', join(bin, 'sh'));
        const env = { HOME: base, PATH: bin };
        const tools = spawnSync('/bin/sh', ['-c', 'command -v g++ gcc cc c++ make python3 python; true'], {
          env,
          encoding: 'utf8',
        });
        t.equal(tools.stdout, '', `${x.arch}: no compiler, make or python on the install's PATH`);

        const args = ['install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts'];
        args.push('--cache', join(base, 'empty-cache'), '--prefix', join(base, 'prefix'), tgz);
        const install = await run(process.execPath, [npmCli, ...args], { env });
        t.equal(install.code, 0, `${x.arch}: npm install exits 0:\n${install.out}`);
        const pkg = join(base, 'prefix', 'node_modules', 'vipmesh');
        t.match(
          install.out,
          `vipmesh install: using the prebuilt native addon ${pkg}/prebuilds/linux-${x.arch}/packet.node`,
        );
        t.match(install.out, `staged better-sqlite3-v${sqliteVersion}-node-v115-linux-${x.arch}.tar.gz`);
        t.notOk(existsSync(join(pkg, 'build')), `${x.arch}: vipmesh compiled nothing (no build/)`);
        t.same(
          files(join(pkg, 'node_modules', 'better-sqlite3', 'build')),
          ['Release/better_sqlite3.node'],
          `${x.arch}: better-sqlite3 unpacked the staged binary and compiled nothing`,
        );

        const [prog, ...pre] = x.node;
        const check = await run(prog!, [...pre, '--input-type=module', '-e', CHECK], { cwd: pkg, env });
        const line = /^RESULT (.*)$/m.exec(check.out);
        t.ok(line, `${x.arch}: the check ran:\n${check.out}`);
        if (line === null) return;
        const r = JSON.parse(line[1]!) as {
          arch: string;
          node: string;
          row: { k: string; v: number; version: string };
          socket: { code: string; errno: string };
          lo: number | null;
          liveness: string;
        };
        t.equal(r.arch, x.arch, `the Node that ran the check is ${x.arch}`);
        t.match(r.node, /^v20\./);
        t.match(r.row, { k: 'answer', v: 42, version: /^3\.\d+\.\d+$/ }, `${x.arch}: SQLite in memory`);
        t.equal(
          r.liveness,
          'armed',
          `${x.arch}: the liveness thread's signed pings were acked (HMAC from node's OpenSSL)`,
        );
        if (process.getuid?.() === 0) {
          t.same(
            r.socket,
            { code: 'VIPMESH_ARP_NO_INTERFACE', errno: 'ENODEV' },
            `${x.arch}: the kernel's ENODEV`,
          );
          t.ok(
            typeof r.lo === 'number' && r.lo > 0,
            `${x.arch}: an AF_PACKET socket on lo opened (ifindex ${r.lo})`,
          );
        } else {
          t.same(
            r.socket,
            { code: 'VIPMESH_ARP_PERMISSION', errno: 'EPERM' },
            `${x.arch}: the kernel's EPERM`,
          );
        }
        const version = await run(prog!, [...pre, 'dist/cli/main.js', 'version'], { cwd: pkg, env });
        t.match(version.out, `(node ${r.node}, linux/${x.arch})`, `${x.arch}: vipmesh version runs`);
      }),
    );
  },
);
