/**
 * The native layers on a real kernel: the AF_PACKET binding (src/arp/packet-socket.ts; a packet socket
 * binds to an interface of its own namespace only) and the batched lo addresses (src/arp/netlink.ts),
 * each from a script run inside a node namespace.
 */
import t from 'tap';
import { canUseNetns, Lab } from './lab.js';

const skip = canUseNetns() ? false : 'needs root and ip netns';
/** Under tap, children run with tap's TypeScript loader (their coverage counts); otherwise tsx. */
const TS = process.execArgv.some((a) => a.includes('@tapjs/typescript'))
  ? process.execArgv.filter((a) => a.startsWith('--import') || a === '--enable-source-maps')
  : ['--import', 'tsx'];

/**
 * In the namespace: errors for a missing interface; then open ARP and NDP sockets on eth0, send a
 * frame to the peer, and report what arrived in 1.5 s as JSON.
 */
const SCRIPT = `
import { PacketSocket } from './src/arp/packet-socket.ts';
import { NDP_FILTER, encodeFilter } from './src/arp/bpf.ts';
import { arpProbe, decodeArp } from './src/arp/codec.ts';
import { decodeNdp } from './src/arp/ndp.ts';
const out = { errors: {}, arp: [], ndp: [], other: 0 };
try { new PacketSocket('nope0', 'arp', () => {}); } catch (e) {
  out.errors.missing = { code: e.code, errno: e.details.errno, iface: e.details.iface, message: e.message };
}
const arp = new PacketSocket('eth0', 'arp', (f, type) => {
  const p = decodeArp(f);
  out.arp.push(typeof p === 'string' ? p : { op: p.op, type });
});
const ndp = new PacketSocket('eth0', 'ndp', (f) => {
  const p = decodeNdp(f);
  if (typeof p === 'string') out.other++;
  else out.ndp.push(p.type);
}, encodeFilter(NDP_FILTER));
out.ifindex = arp.ifindex;
ndp.addMembership(Buffer.from('3333ff000100', 'hex'));
const mac = Buffer.from(process.argv[1].replaceAll(':', ''), 'hex');
for (let i = 0; i < 3; i++) arp.send(arpProbe(mac, Buffer.from([198, 51, 100, 12])));
process.stdout.write('ready\\n');
setTimeout(() => {
  ndp.dropMembership(Buffer.from('3333ff000100', 'hex'));
  arp.close();
  ndp.close();
  arp.close();
  arp.send(Buffer.alloc(60));
  process.stdout.write(JSON.stringify(out) + '\\n');
}, 1500);
`;

t.test(
  'packet sockets: errno and interface in errors, frames both ways, the NDP filter',
  { skip },
  async (t) => {
    const lab = await Lab.create();
    t.teardown(() => lab.destroy());
    const n1 = await lab.addNode('n1', { ipv4: '198.51.100.11/24', ipv6: '2001:db8::11/64' });
    await lab.addNode('n2', { ipv4: '198.51.100.12/24', ipv6: '2001:db8::12/64' });
    const child = lab.spawn('n1', [process.execPath, ...TS, '--input-type=module', '-e', SCRIPT, n1.mac], {
      cwd: process.cwd(),
    });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const end = Date.now() + 20_000;
    while (!out.includes('ready') && Date.now() < end && child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 20));
    }
    // Traffic while the sockets listen: IPv4 ping (ARP), IPv6 ping (NS/NA, and echo the filter drops).
    await lab.exec('n2', ['ping', '-c', '2', '-i', '0.2', '-W', '1', '198.51.100.11']);
    await lab.exec('n2', ['ping', '-6', '-c', '2', '-i', '0.2', '-W', '1', '2001:db8::11']);
    await new Promise((r) => child.once('exit', r));
    const line = out.split('\n').find((l) => l.startsWith('{'));
    t.ok(line, `the script reported (${out.slice(-500)})`);
    const r = JSON.parse(line ?? '{}') as {
      errors: { missing?: { code: string; errno: string; iface: string; message: string } };
      arp: Array<{ op: number; type: number } | string>;
      ndp: number[];
      other: number;
      ifindex: number;
    };
    t.same(r.errors.missing && { ...r.errors.missing, message: undefined }, {
      code: 'VIPMESH_ARP_NO_INTERFACE',
      errno: 'ENODEV',
      iface: 'nope0',
      message: undefined,
    });
    t.match(r.errors.missing?.message, /nope0/, 'the message names the interface');
    t.ok(r.ifindex > 1, 'bound to eth0 by index');
    t.ok(
      r.arp.some((p) => typeof p === 'object' && p.op === 2),
      'the peer answered our ARP probe (frames sent and received)',
    );
    t.ok(r.arp.length > 0 && r.arp.every((p) => typeof p === 'object'), 'the ARP socket saw ARP only');
    t.ok(r.ndp.includes(135) || r.ndp.includes(136), 'the NDP socket saw NS/NA');
    t.equal(r.other, 0, 'and nothing else: the ICMPv6 echoes were filtered out in the kernel');
  },
);

/**
 * In the namespace: add 400 VIPs to lo at once (more than one datagram holds), one of them an address the
 * kernel refuses, and report what the tables and `ip` saw; then remove them all.
 */
const ADDRESSES = `
import { execFileSync } from 'node:child_process';
import { NetlinkTables } from './src/arp/netlink.ts';
import { MAX_BATCH } from './src/arp/addr-batch.ts';
import { parseIpAddr } from './src/util/ip.ts';
const vips = [
  ...Array.from({ length: 100 }, (_, i) => '198.51.100.' + (100 + i)),
  ...Array.from({ length: 299 }, (_, i) => '2001:db8::1:' + (i + 1).toString(16)),
];
vips.splice(300, 0, 'ff02::1'); // multicast: the kernel refuses it on lo (EADDRNOTAVAIL)
const tables = new NetlinkTables();
const results = await Promise.all(vips.map((v) => tables.add(parseIpAddr(v)).then(() => 'ok', (e) => e)));
const failed = results.filter((r) => r !== 'ok').map((e) => ({ code: e.code, message: e.message, vip: e.details.vip, errno: e.details.errno }));
const lo = () => JSON.parse(execFileSync('ip', ['-j', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' }))[0].addr_info;
const onLo = lo();
const ours = (await tables.listOurs()).map((a) => a.text);
await Promise.all(ours.map((v) => tables.remove(parseIpAddr(v))));
const after = (await tables.listOurs()).length;
tables.close();
process.stdout.write(JSON.stringify({
  batch: MAX_BATCH,
  asked: vips.length,
  failed,
  onLo: onLo.filter((a) => a.local.startsWith('198.51.100.') || a.local.startsWith('2001:db8::1:')).map((a) => ({ local: a.local, label: a.label, proto: a.protocol })),
  ours: ours.length,
  after,
}) + '\\n');
`;

t.test('lo addresses in batches: per-VIP errors, labels, cleanup', { skip }, async (t) => {
  const lab = await Lab.create();
  t.teardown(() => lab.destroy());
  await lab.addNode('n1', { ipv4: '198.51.100.11/24', ipv6: '2001:db8::11/64' });
  const child = lab.spawn('n1', [process.execPath, ...TS, '--input-type=module', '-e', ADDRESSES], {
    cwd: process.cwd(),
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  await new Promise((r) => child.once('exit', r));
  const line = out.split('\n').find((l) => l.startsWith('{'));
  t.ok(line, line === undefined ? `the script reported nothing: ${out.slice(-500)}` : 'the script reported');
  const r = JSON.parse(line ?? '{}') as {
    batch: number;
    asked: number;
    failed: Array<{ code: string; message: string; vip: string; errno: string }>;
    onLo: Array<{ local: string; label?: string; proto?: number | string }>;
    ours: number;
    after: number;
  };
  t.ok(r.asked > r.batch, `more VIPs (${r.asked}) than one datagram holds (${r.batch})`);
  t.same(r.failed, [
    {
      code: 'VIPMESH_ARP_ADDRESS',
      message: 'adding ff02::1 on lo failed: Request rejected: EADDRNOTAVAIL',
      vip: 'ff02::1',
      errno: 'EADDRNOTAVAIL',
    },
  ]);
  t.equal(r.onLo.length, 399, 'every other VIP is on lo');
  t.ok(
    r.onLo.filter((a) => a.local.includes('.')).every((a) => a.label === 'lo:vm'),
    'IPv4 VIPs carry the label',
  );
  t.equal(r.ours, 399, 'all found again as ours (label or address protocol)');
  t.equal(r.after, 0, 'and all removed');
});
