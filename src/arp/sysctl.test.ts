import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ArpSysctl, procSysctl } from './sysctl.js';

function tree(values: Record<string, Record<string, string>>): string {
  const root = mkdtempSync(join(tmpdir(), 'vipmesh-sysctl-'));
  for (const [iface, kv] of Object.entries(values)) {
    mkdirSync(join(root, iface));
    for (const [k, v] of Object.entries(kv)) writeFileSync(join(root, iface, k), `${v}\n`);
  }
  return root;
}
const read = (root: string, iface: string, key: string) =>
  readFileSync(join(root, iface, key), 'utf8').trim();

t.test('apply sets arp_ignore=1 / arp_announce=2 and restore puts the originals back', async (t) => {
  const root = tree({
    eth0: { arp_ignore: '0', arp_announce: '0' },
    eth1: { arp_ignore: '2', arp_announce: '2' },
  });
  const state = join(root, 'run', 'vipmesh', 'arp-sysctl.json');
  const s = new ArpSysctl(procSysctl, state, root);
  s.apply('eth0');
  s.apply('eth1');
  t.equal(read(root, 'eth0', 'arp_ignore'), '1');
  t.equal(read(root, 'eth0', 'arp_announce'), '2');
  t.equal(read(root, 'eth1', 'arp_ignore'), '2', 'a stricter value is kept');
  t.same(JSON.parse(readFileSync(state, 'utf8')), { eth0: { arp_ignore: '0', arp_announce: '0' } });
  s.restoreAll();
  t.equal(read(root, 'eth0', 'arp_ignore'), '0');
  t.equal(read(root, 'eth0', 'arp_announce'), '0');
  t.equal(read(root, 'eth1', 'arp_ignore'), '2');
  t.notOk(existsSync(state), 'the state file goes once everything is restored');
});

t.test('after a crash, the next run restores the values the crashed run changed', async (t) => {
  const root = tree({ eth0: { arp_ignore: '0', arp_announce: '1' } });
  const state = join(root, 'arp-sysctl.json');
  new ArpSysctl(procSysctl, state, root).apply('eth0'); // "crashes": never restores
  t.equal(read(root, 'eth0', 'arp_announce'), '2');
  const next = new ArpSysctl(procSysctl, state, root);
  t.same(next.pending, ['eth0']);
  next.apply('eth0');
  next.restoreAll();
  t.equal(read(root, 'eth0', 'arp_ignore'), '0');
  t.equal(read(root, 'eth0', 'arp_announce'), '1');
});

t.test('errors name the interface; a vanished interface is skipped on restore', async (t) => {
  const root = tree({ eth0: { arp_ignore: '0', arp_announce: '0' } });
  const s = new ArpSysctl(procSysctl, undefined, root);
  t.throws(() => s.apply('nope0'), { code: 'VIPMESH_ARP_SYSCTL' });
  const denied = new ArpSysctl(
    {
      read: () => '0',
      write: () => {
        throw Object.assign(new Error('denied'), { code: 'EACCES' });
      },
    },
    undefined,
    root,
  );
  t.throws(() => denied.apply('eth0'), { code: 'VIPMESH_ARP_PERMISSION' });
  s.apply('eth0');
  let vanished = false;
  const gone = new ArpSysctl(
    {
      read: () => '0',
      write: (p) => {
        if (vanished && p.includes('eth9')) throw Object.assign(new Error('gone'), { code: 'ENOENT' });
      },
    },
    undefined,
    root,
  );
  gone.apply('eth9');
  vanished = true;
  t.doesNotThrow(() => gone.restoreAll());
  t.same(gone.pending, []);
});

t.test('a state file that cannot be written is named with its errno, and no sysctl changes', async (t) => {
  const root = tree({ eth0: { arp_ignore: '0', arp_announce: '0' } });
  // A regular file where the state folder should be: the write fails with ENOTDIR.
  writeFileSync(join(root, 'run'), '');
  const state = join(root, 'run', 'arp-sysctl.json');
  const s = new ArpSysctl(procSysctl, state, root);
  const err = t.throws(() => s.apply('eth0'), { code: 'VIPMESH_ARP_STATE' }) as Error;
  t.match(err.message, `writing ${state} failed (ENOTDIR)`);
  t.notMatch(err.message, /CAP_NET_ADMIN/, 'a file-system error is not blamed on a capability');
  t.equal(read(root, 'eth0', 'arp_ignore'), '0', 'the sysctl is left as it was');
});

t.test('EROFS on a sysctl names the read-only path, not a capability', async (t) => {
  const s = new ArpSysctl(
    {
      read: () => '0',
      write: () => {
        throw Object.assign(new Error('ro'), { code: 'EROFS' });
      },
    },
    undefined,
    '/proc/sys/net/ipv4/conf',
  );
  const err = t.throws(() => s.apply('eth0'), { code: 'VIPMESH_ARP_SYSCTL' }) as Error;
  t.match(err.message, '/proc/sys/net/ipv4/conf/eth0/arp_ignore is on a read-only mount');
  t.notMatch(err.message, /CAP_NET_ADMIN/);
});
