/**
 * The attack: while the server is down, a station that is no node of the cluster sends gratuitous ARP
 * (real `arping -U`) and unsolicited Neighbor Advertisements (the project's codec on a packet socket) for
 * the VIPs. The holder keeps them and wins the client's caches back. The counter-case: the same frames
 * from another node of the cluster (its registered MAC) still make the holder let go, which is what keeps
 * a healed partition from leaving two holders. Real `vipmesh server` / `vipmesh agent` processes in
 * network namespaces (see cluster-suite.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { sleep, until } from './cluster-fixture.js';
import { type Cluster, SRV_URL, startCluster } from './cluster-suite.js';
import { canUseNetns } from './lab.js';

const skip = canUseNetns() ? false : 'needs root and the ip tool (network namespaces)';
/** Under tap, children run with tap's TypeScript loader; otherwise tsx. */
const TS = process.execArgv.some((a) => a.includes('@tapjs/typescript'))
  ? process.execArgv.filter((a) => a.startsWith('--import') || a === '--enable-source-maps')
  : ['--import', 'tsx'];

const V4 = '198.51.100.200';
const V6 = '2001:db8::200';
const MANIFEST = `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan }
spec:
  addresses: [${V4}/32, ${V6}/128]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: lan }
spec: { ipAddressPools: [lan] }
---
apiVersion: v1
kind: Service
metadata: { name: web }
spec: { type: LoadBalancer, loadBalancerIP: ${V4}, ports: [{ port: 8080, protocol: TCP }] }
---
apiVersion: v1
kind: Service
metadata: { name: web6 }
spec:
  type: LoadBalancer
  ipFamilyPolicy: SingleStack
  ipFamilies: [IPv6]
  loadBalancerIP: ${V6}
  ports: [{ port: 8080, protocol: TCP }]
`;

/** Unsolicited NAs (override flag, to ff02::1) for argv[1] from this namespace's eth0 MAC, 3 of them. */
const SEND_NA = `
import { readFileSync } from 'node:fs';
import { PacketSocket } from './src/arp/packet-socket.ts';
import { unsolicitedNa } from './src/arp/ndp.ts';
import { parseVip } from './src/arp/addr.ts';
const mac = Buffer.from(readFileSync('/sys/class/net/eth0/address', 'utf8').trim().replaceAll(':', ''), 'hex');
const s = new PacketSocket('eth0', 'ndp', () => {});
let n = 0;
const tick = () => {
  s.send(unsolicitedNa(mac, parseVip(process.argv[1]).bytes));
  if (++n < 3) setTimeout(tick, 200); else setTimeout(() => { s.close(); process.exit(0); }, 100);
};
tick();
`;

async function claim(k: Cluster, from: string, vip: string): Promise<void> {
  const argv = vip.includes(':')
    ? [process.execPath, ...TS, '--input-type=module', '-e', SEND_NA, vip]
    : ['arping', '-U', '-c', '2', '-I', 'eth0', vip];
  // arping binds to the address it claims; the sender's namespace lets it bind one it does not have.
  if (!vip.includes(':')) await k.c.lab.run(from, ['sysctl', '-qw', 'net.ipv4.ip_nonlocal_bind=1']);
  const r = await k.c.lab.exec(from, argv, 20_000);
  if (r.code !== 0 && !vip.includes(':') && !/Sent 2 probes/.test(r.stdout)) {
    throw new Error(`${from}: ${argv.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  }
  if (r.code !== 0 && vip.includes(':')) throw new Error(`${from}: sending NAs failed: ${r.stderr}`);
}

/** The MAC the client's neighbour cache holds for `vip` (no traffic sent). */
async function cached(k: Cluster, vip: string): Promise<string | undefined> {
  const j = JSON.parse(
    await k.c.lab.run('client', ['ip', '-j', 'neigh', 'show', vip, 'dev', 'eth0']),
  ) as Array<{
    lladdr?: string;
  }>;
  return j[0]?.lladdr;
}

t.test('spoofed gratuitous ARP / NA during a server outage', { skip }, async (t) => {
  const attacker = { ipv4: '198.51.100.66' };
  const k = await startCluster(t, { serverFlags: [], servers: [SRV_URL] }, { attacker });
  const c = k.c;
  await k.startServer();
  await Promise.all([k.startAgent('a1'), k.startAgent('a2')]);
  const file = join(c.dir, 'garp.yaml');
  writeFileSync(file, MANIFEST);
  await k.cli(['apply', '-f', file]);
  const holders = await until('both VIPs placed', async () => {
    const h = await k.holders();
    return h.size === 2 ? h : undefined;
  });
  for (const [vip, node] of holders) {
    await until(`${vip} on ${node}'s lo`, async () => (await k.onLo(node)).includes(vip));
    const ping = vip.includes(':') ? ['ping', '-6'] : ['ping'];
    await until(`the client pings ${vip}`, async () => {
      return (await c.lab.exec('client', [...ping, '-c', '1', '-W', '1', vip])).code === 0;
    });
    t.equal(await cached(k, vip), c.lab.node(node).mac, `the client's cache has ${vip} at ${node}`);
  }
  await until('the nodes list their MACs', async () =>
    (await k.nodes()).every((n) => n.status?.interfaces?.some((i: { mac: string }) => i.mac !== undefined)),
  );

  await c.stop('srv');
  for (const a of ['a1', 'a2']) {
    await until(`${a} lost the server`, async () => /lost the server/.test(c.daemons.get(a)!.output()));
  }

  for (const [vip, holder] of holders) {
    await t.test(`${vip}: an attacker's claims are announced over; the holder keeps it`, async (t) => {
      const out = c.daemons.get(holder)!.output;
      const before = out().length;
      const monitor = c.lab.spawn('client', ['ip', 'monitor', 'neigh', 'dev', 'eth0']);
      let seen = '';
      monitor.stdout?.on('data', (b: Buffer) => (seen += b.toString()));
      t.teardown(() => void monitor.kill());
      const attackerMac = c.lab.node('attacker').mac;
      await claim(k, 'attacker', vip);
      await until(`${holder} saw the foreign claims`, async () =>
        out().slice(before).includes('a MAC of no cluster node claims a VIP we hold'),
      );
      const holderMac = c.lab.node(holder).mac;
      await until("the client's cache back at the holder", async () => (await cached(k, vip)) === holderMac);
      t.pass(`the client's cache for ${vip} is ${holder}'s MAC again, without the client sending anything`);
      monitor.kill();
      t.match(
        seen,
        new RegExp(`${vip.replaceAll('.', '\\.')} .*lladdr ${attackerMac}`),
        "the attack worked for a moment: the client's cache pointed at the attacker",
      );
      // Past a few probe rounds (500 ms each) of the agent that lost its server.
      await sleep(1500);
      t.ok((await k.onLo(holder)).includes(vip), `${vip} is still on ${holder}'s lo`);
      t.notMatch(out().slice(before), /releasing it|released VIP/, 'nothing was released');
      if (!vip.includes(':')) {
        const macs = await k.arpAnswers(vip);
        t.same([...macs], [holderMac], "a fresh ARP from the client gets the holder's MAC only");
      }
      const ping = vip.includes(':') ? ['ping', '-6'] : ['ping'];
      const r = await c.lab.exec('client', [...ping, '-c', '1', '-W', '2', vip]);
      t.equal(r.code, 0, `the client still reaches ${vip}`);
      t.equal(await cached(k, vip), holderMac, 'at the holder');
    });
  }

  for (const [vip, holder] of holders) {
    const peer = holder === 'a1' ? 'a2' : 'a1';
    await t.test(`${vip}: the same claims from ${peer}, a cluster node, make ${holder} let go`, async (t) => {
      await claim(k, peer, vip);
      await until(`${holder} released ${vip}`, async () => !(await k.onLo(holder)).includes(vip), 5000);
      t.pass(`${holder} released ${vip} when ${peer} (${c.lab.node(peer).mac}) claimed it`);
      t.match(
        c.daemons.get(holder)!.output(),
        /another node claims a VIP while the server is lost; releasing it/,
        'and said why',
      );
    });
  }
});
