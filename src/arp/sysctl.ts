/**
 * The LVS-DR settings on announce interfaces: `arp_ignore=1` (the kernel answers ARP only for addresses on
 * the receiving interface, so never for VIPs on lo) and `arp_announce=2` (the kernel never uses a VIP as the
 * source of its own ARP requests). Original values are written to a state file before the first change and
 * restored on close; a run that finds the file (an earlier run crashed) restores from it too.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { errnoOf, VipmeshError } from '../errors.js';

/** File access for sysctls and the state file (a temporary folder in tests). */
interface SysctlIO {
  read(path: string): string;
  write(path: string, value: string): void;
}

/** /proc/sys and the real state file. */
export const procSysctl: SysctlIO = {
  read: (path) => readFileSync(path, 'utf8').trim(),
  write: (path, value) => writeFileSync(path, value),
};

/** Wanted values: keep a stricter value already set (arp_ignore 2 also ignores VIPs on lo). */
const WANTED: Record<string, { value: string; keep: (cur: string) => boolean }> = {
  arp_ignore: { value: '1', keep: (cur) => cur === '1' || cur === '2' },
  arp_announce: { value: '2', keep: (cur) => cur === '2' },
};

type Originals = Record<string, Record<string, string>>;

/**
 * Create the state folder. A plain mkdir first: a recursive one reports ENOENT where the parent is on a
 * read-only mount, which would hide the EROFS the user must see.
 */
function mkdirState(dir: string): void {
  try {
    mkdirSync(dir);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'EEXIST') return;
    if (errno !== 'ENOENT') throw err;
    mkdirSync(dir, { recursive: true });
  }
}

/** Sets and restores arp_ignore / arp_announce per interface. */
export class ArpSysctl {
  readonly #io: SysctlIO;
  readonly #root: string;
  readonly #stateFile: string | undefined;
  #originals: Originals = {};

  /**
   * @param stateFile where originals survive a crash (`<state-dir>/arp-sysctl.json`); none when undefined.
   * @param root the sysctl tree, default `/proc/sys/net/ipv4/conf`.
   */
  constructor(io: SysctlIO = procSysctl, stateFile?: string, root = '/proc/sys/net/ipv4/conf') {
    this.#io = io;
    this.#root = root;
    this.#stateFile = stateFile;
    if (stateFile !== undefined) {
      try {
        this.#originals = JSON.parse(readFileSync(stateFile, 'utf8')) as Originals;
      } catch {
        this.#originals = {};
      }
    }
  }

  /** Interfaces whose values an earlier, crashed run changed and did not restore. */
  get pending(): string[] {
    return Object.keys(this.#originals);
  }

  #path(ifname: string, key: string): string {
    return join(this.#root, ifname, key);
  }

  #save(): void {
    if (this.#stateFile === undefined) return;
    if (Object.keys(this.#originals).length === 0) {
      rmSync(this.#stateFile, { force: true });
      return;
    }
    try {
      mkdirState(dirname(this.#stateFile));
      writeFileSync(this.#stateFile, JSON.stringify(this.#originals));
    } catch (err) {
      // Not a capability problem: the folder is missing from the service's writable paths (EROFS under
      // ProtectSystem=strict), or the disk refuses. The sysctl is left untouched.
      const errno = errnoOf(err);
      throw new VipmeshError(
        'VIPMESH_ARP_STATE',
        `writing ${this.#stateFile} failed (${errno ?? String(err)}); the sysctl originals must be saved before arp_ignore/arp_announce change${errno === 'EROFS' ? `: ${dirname(this.#stateFile)} is read-only (under systemd the unit must name it, e.g. RuntimeDirectory=vipmesh)` : ''}`,
        { cause: err, details: { path: this.#stateFile, errno } },
      );
    }
  }

  /** Set both values on `ifname`, remembering the originals first. */
  apply(ifname: string): void {
    for (const [key, want] of Object.entries(WANTED)) {
      const path = this.#path(ifname, key);
      try {
        const cur = this.#io.read(path);
        if (want.keep(cur)) continue;
        this.#originals[ifname] = {
          ...this.#originals[ifname],
          [key]: this.#originals[ifname]?.[key] ?? cur,
        };
        this.#save();
        this.#io.write(path, want.value);
      } catch (err) {
        if (err instanceof VipmeshError) throw err;
        const errno = errnoOf(err);
        const denied = errno === 'EACCES' || errno === 'EPERM';
        const hint = denied
          ? '; it needs CAP_NET_ADMIN'
          : errno === 'EROFS'
            ? `; ${path} is on a read-only mount (/proc/sys/net must be writable: no ProtectKernelTunables=)`
            : '';
        throw new VipmeshError(
          denied ? 'VIPMESH_ARP_PERMISSION' : 'VIPMESH_ARP_SYSCTL',
          `setting net.ipv4.conf.${ifname}.${key}=${want.value} failed (${errno ?? String(err)})${hint}`,
          { cause: err, details: { iface: ifname, path, errno } },
        );
      }
    }
  }

  /** Put back the originals of `ifname` (a vanished interface is skipped and forgotten). */
  restore(ifname: string): void {
    const orig = this.#originals[ifname];
    if (orig === undefined) return;
    for (const [key, value] of Object.entries(orig)) {
      try {
        this.#io.write(this.#path(ifname, key), value);
      } catch {
        // The interface is gone: nothing left to restore.
      }
    }
    delete this.#originals[ifname];
    this.#save();
  }

  /** Restore every interface this or an earlier run changed. */
  restoreAll(): void {
    for (const ifname of Object.keys(this.#originals)) this.restore(ifname);
  }
}
