/**
 * Containers that boot the machine's own systemd as PID 1 (systemd-nspawn -b), for the root-only suite that
 * runs the shipped units under a real systemd. Each container's root is a small folder under a unique temp
 * dir: the machine's /usr bound read-only (so its systemd, node, ip and arping), a writable /etc, /var and
 * /usr/local of its own, and the network namespace of a lab node. nspawn runs in a private mount
 * namespace with a tmpfs on /run/systemd, so nothing of it lands on the host; --register=no means no
 * machined, so commands reach the container by entering the namespaces of its PID 1.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { until } from '../../src/testing/until.js';
import { type ExecResult, nsExec } from './lab.js';

/** Why the suite cannot run here, or undefined when it can. */
export function systemdSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  try {
    execFileSync('systemd-nspawn', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'needs systemd-nspawn (Debian package systemd-container)';
  }
  if (!existsSync('/usr/lib/systemd/systemd')) return 'needs systemd (/usr/lib/systemd/systemd)';
  const node = realpathSync(process.execPath);
  if (!node.startsWith('/usr/') || node.startsWith('/usr/local/')) {
    return `node lives at ${node}; the containers see only the machine's /usr outside /usr/local`;
  }
  if (!existsSync('dist/cli/main.js')) return 'needs dist/ (npm run build): it is what npm pack ships';
  if (!existsSync('build/Release/packet.node')) return 'needs the AF_PACKET addon (npm ci builds it)';
  return undefined;
}

/**
 * The package as `npm install -g --prefix /usr/local <tarball>` lays it out, built offline: the tarball of
 * `npm pack` unpacked (it bundles the production dependencies), any production dependency it lacks (from
 * package-lock.json) hard-linked from this checkout's node_modules, and the addon its install script builds.
 * Returns the package folder.
 */
export function airGapPackage(dir: string): string {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { encoding: 'utf8' });
  const tarball = join(dir, (JSON.parse(out) as Array<{ filename: string }>)[0]!.filename);
  execFileSync('tar', ['xzf', tarball, '-C', dir]);
  const pkg = join(dir, 'package');
  const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as {
    packages: Record<string, { dev?: boolean }>;
  };
  const modules = realpathSync('node_modules');
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.dev === true || path.lastIndexOf('node_modules/') !== 0) continue;
    const name = path.slice('node_modules/'.length);
    const dest = join(pkg, 'node_modules', name);
    if (existsSync(dest)) continue; // bundled in the tarball
    mkdirSync(join(dest, '..'), { recursive: true });
    execFileSync('cp', ['-al', join(modules, name), dest]);
  }
  mkdirSync(join(pkg, 'build', 'Release'), { recursive: true });
  copyFileSync('build/Release/packet.node', join(pkg, 'build', 'Release', 'packet.node'));
  return pkg;
}

/** A booted container. */
export class Machine {
  #leader = 0;
  #exited: Promise<void>;

  private constructor(
    readonly name: string,
    readonly root: string,
    readonly child: ChildProcess,
    readonly console: string[],
  ) {
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /**
   * Build a root under `dir` with `pkg` unpacked at /usr/local/lib/node_modules/vipmesh (as an air-gapped
   * node would have it before running the installer), and boot it in network namespace `netns`.
   */
  static async boot(dir: string, name: string, netns: string, pkg: string): Promise<Machine> {
    const root = join(dir, name, 'root');
    const local = join(dir, name, 'local');
    for (const d of ['usr', 'etc', 'var/lib', 'var/log', 'run', 'tmp', 'proc', 'sys', 'dev', 'root']) {
      mkdirSync(join(root, d), { recursive: true });
    }
    for (const d of ['bin', 'lib', 'lib64', 'sbin']) {
      if (existsSync(`/${d}`)) execFileSync('ln', ['-s', `usr/${d}`, join(root, d)]);
    }
    copyFileSync('/usr/lib/os-release', join(root, 'etc/os-release'));
    // Debian's /usr/bin/awk and friends are links through /etc/alternatives, part of any real /etc.
    if (existsSync('/etc/alternatives')) execFileSync('cp', ['-a', '/etc/alternatives', join(root, 'etc')]);
    writeFileSync(join(root, 'etc/machine-id'), '');
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
    // The root is this scratch directory, with no fstab: nothing for systemd-remount-fs to do, and about once
    // in a few boots its remount of it failed and left the container `degraded` before any vipmesh unit ran.
    mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
    symlinkSync('/dev/null', join(root, 'etc/systemd/system/systemd-remount-fs.service'));
    mkdirSync(join(local, 'bin'), { recursive: true });
    mkdirSync(join(local, 'lib', 'node_modules'), { recursive: true });
    execFileSync('cp', ['-al', pkg, join(local, 'lib', 'node_modules', 'vipmesh')]);
    const nspawn = [
      'systemd-nspawn',
      '--quiet',
      '--register=no',
      '--keep-unit',
      '--boot',
      `--machine=${name}`,
      `--directory=${root}`,
      '--bind-ro=/usr',
      `--bind=${local}:/usr/local`,
      `--network-namespace-path=/run/netns/${netns}`,
      // What a real host gives the daemons: CAP_NET_ADMIN and a writable /proc/sys/net. nspawn grants both
      // only with --private-network, which cannot be combined with an existing namespace.
      '--capability=CAP_NET_ADMIN',
    ].join(' ');
    const child = spawn(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        `mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && exec ${nspawn}`,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, SYSTEMD_NSPAWN_API_VFS_WRITABLE: 'network', SYSTEMD_COLORS: '0' },
      },
    );
    const console: string[] = [];
    child.stdout!.on('data', (d: Buffer) => console.push(d.toString()));
    child.stderr!.on('data', (d: Buffer) => console.push(d.toString()));
    const m = new Machine(name, root, child, console);
    m.#leader = await until(
      `${name}: PID 1 of the container`,
      () => {
        if (child.exitCode !== null) throw new Error(`${name}: nspawn exited: ${console.join('')}`);
        // nspawn's own helper child comes and goes; PID 1 is the child running systemd.
        const kids = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim();
        for (const pid of kids.split(' ').filter(Boolean)) {
          try {
            if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'systemd') return Number(pid);
          } catch {
            // gone meanwhile
          }
        }
        return undefined;
      },
      { timeoutMs: 30_000 },
    );
    await until(
      `${name}: systemd reaches running`,
      async () => {
        const r = await m.sh('systemctl is-system-running');
        if (r.stdout.trim() === 'degraded') {
          const failed = await m.sh('systemctl --failed --no-legend');
          throw new Error(`${name} booted degraded: ${failed.stdout}`);
        }
        return r.stdout.trim() === 'running';
      },
      { timeoutMs: 60_000, stepMs: 100 },
    );
    return m;
  }

  /** Run `script` with sh inside the container (all of PID 1's namespaces, a clean environment). */
  sh(script: string, timeoutMs = 60_000): Promise<ExecResult> {
    return nsExec(
      undefined,
      [
        'nsenter',
        '-t',
        String(this.#leader),
        '-a',
        'env',
        '-i',
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        'HOME=/root',
        'LANG=C.UTF-8',
        'sh',
        '-c',
        script,
      ],
      timeoutMs,
    );
  }

  /** Like {@link sh}; throws with the output when the script fails. */
  async run(script: string, timeoutMs?: number): Promise<string> {
    const r = await this.sh(script, timeoutMs);
    if (r.code !== 0) throw new Error(`${this.name}: ${script} failed (${r.code}): ${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** Power off (nspawn turns SIGTERM into an orderly shutdown); SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.#exited;
    clearTimeout(timer);
  }
}
