/**
 * The announcer on a real kernel: `vipmesh announce` in node namespaces on one bridge, checked with the
 * tools a user would use (arping, ip neigh, ndisc6, a TCP client, tcpdump on the bridge).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { until } from '../../src/testing/until.js';
import { canUseNetns, Lab } from './lab.js';

const root = canUseNetns();
const skip = root ? false : 'needs root and ip netns';
const VIP = '198.51.100.100';
const VIP6 = '2001:db8::100';
const PORT = '8080';

/**
 * How to run TypeScript in a child: under tap, the loader tap runs us with (so the children's coverage is
 * counted); otherwise tsx.
 */
const TS = process.execArgv.some((a) => a.includes('@tapjs/typescript'))
  ? process.execArgv.filter((a) => a.startsWith('--import') || a === '--enable-source-maps')
  : ['--import', 'tsx'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A spawned process with its collected output and a promise for its exit. */
interface Proc {
  child: ChildProcess;
  out(): string;
  exited: Promise<number | null>;
}

function track(child: ChildProcess): Proc {
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out: () => out, exited };
}

/** Start `vipmesh announce` in `node`; resolves once it logged "announcing" (or exited). */
async function announce(lab: Lab, node: string, args: string[], stateDir: string): Promise<Proc> {
  const p = track(
    lab.spawn(node, [
      process.execPath,
      ...TS,
      'src/cli/main.ts',
      'announce',
      '--interface',
      'eth0',
      '--state-dir',
      stateDir,
      ...args,
    ]),
  );
  let exited = false;
  void p.exited.then(() => (exited = true));
  await until(`announce in ${node}`, () => exited || p.out().includes('"op":"ready"'));
  return p;
}

async function stop(p: Proc, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  p.child.kill(signal);
  return p.exited;
}

/** tcpdump on the bridge (in the switch namespace), ready when it says it listens. */
async function sniff(lab: Lab, filter: string): Promise<Proc> {
  const { spawn } = await import('node:child_process');
  const p = track(
    spawn('ip', ['netns', 'exec', lab.switchNs, 'tcpdump', '-l', '-n', '-e', '-i', 'br0', filter]),
  );
  await until('tcpdump', () => p.out().includes('listening on'));
  return p;
}

async function endSniff(p: Proc): Promise<string> {
  await sleep(200);
  p.child.kill('SIGINT');
  await p.exited;
  return p.out();
}

/** A TCP server answering with the node's name (a node one-liner, so nothing but node is needed). */
function server(lab: Lab, node: string): Proc {
  const code = `require('net').createServer((s)=>s.end(${JSON.stringify(node)})).listen(${PORT},'::')`;
  return track(lab.spawn(node, [process.execPath, '-e', code]));
}

/** Connect from the client to ip:PORT once; resolves to what the server said ('' on failure). */
async function ask(lab: Lab, ip: string, timeoutMs = 1000): Promise<string> {
  const code = `const s=require('net').connect({host:${JSON.stringify(ip)},port:${PORT},timeout:${timeoutMs}});let d='';s.on('data',(x)=>d+=x);s.on('end',()=>{process.stdout.write(d)});s.on('timeout',()=>process.exit(1));s.on('error',()=>process.exit(1))`;
  const r = await lab.exec('client', [process.execPath, '-e', code], timeoutMs + 5000);
  return r.code === 0 ? r.stdout : '';
}

async function loAddrs(lab: Lab, node: string): Promise<string> {
  return lab.run(node, ['ip', '-o', 'addr', 'show', 'dev', 'lo']);
}

async function setup(t: { teardown(fn: () => unknown): void }): Promise<{ lab: Lab; state: string }> {
  const lab = await Lab.create();
  t.teardown(() => lab.destroy());
  await lab.addNode('n1', { ipv4: '198.51.100.11/24', ipv6: '2001:db8::11/64' });
  await lab.addNode('n2', { ipv4: '198.51.100.12/24', ipv6: '2001:db8::12/64' });
  await lab.addNode('client', { ipv4: '198.51.100.2/24', ipv6: '2001:db8::2/64' });
  return { lab, state: mkdtempSync(join(tmpdir(), 'vipmesh-arp-state-')) };
}

t.test(
  'one holder answers ARP and NDP; traffic reaches it; the VIP moves; SIGTERM cleans up',
  { skip },
  async (t) => {
    const { lab, state } = await setup(t);
    const n1 = lab.node('n1');
    const n2 = lab.node('n2');
    server(lab, 'n1');
    server(lab, 'n2');
    const dump = await sniff(lab, 'arp');
    const a1 = await announce(
      lab,
      'n1',
      ['--vip', VIP, '--vip', VIP6, '--metrics-bind-address', '127.0.0.1:9464'],
      join(state, 'n1'),
    );
    // n2 runs a responder too (for another VIP): it must stay silent about ours.
    const a2 = await announce(lab, 'n2', ['--vip', '198.51.100.101'], join(state, 'n2'));

    const arping = await lab.exec('client', ['arping', '-c', '3', '-w', '3', '-I', 'eth0', VIP]);
    t.equal(arping.code, 0, 'arping gets answers');
    t.match(arping.stdout.toLowerCase(), new RegExp(`\\[${n1.mac}\\]`), 'from the holder MAC');
    t.notMatch(arping.stdout.toLowerCase(), n2.mac, 'never from the non-holder');
    t.match(
      arping.stdout,
      /Received 3 response/,
      'one answer per request (the kernel stays silent: arp_ignore=1)',
    );
    t.equal(await ask(lab, VIP), 'n1', 'a TCP server on the holder answers at the VIP');
    const neigh = await lab.run('client', ['ip', 'neigh', 'show', VIP]);
    t.match(neigh, new RegExp(`lladdr ${n1.mac}`), 'ip neigh on the client: VIP -> holder MAC');
    t.match(await lab.run('n1', ['sysctl', '-n', 'net.ipv4.conf.eth0.arp_ignore']), /^1/);
    t.match(await lab.run('n1', ['sysctl', '-n', 'net.ipv4.conf.eth0.arp_announce']), /^2/);
    t.match(await loAddrs(lab, 'n1'), /198\.51\.100\.100\/32 .*lo:vm/, 'the VIP is on lo with its label');

    t.match(
      await lab.run('n1', ['ip', 'maddr', 'show', 'dev', 'eth0']),
      /inet6 ff02::1:ff00:100/,
      'n1 joined the solicited-node group of the IPv6 VIP (MLD reports for snooping switches)',
    );
    const nd = await lab.exec('client', ['ndisc6', '-1', '-r', '3', '-w', '500', VIP6, 'eth0']);
    t.equal(nd.code, 0, 'ndisc6 resolves the IPv6 VIP');
    t.match(nd.stdout.toLowerCase(), n1.mac, 'to the holder MAC');
    t.equal(await ask(lab, VIP6), 'n1', 'TCP over IPv6 reaches the holder');

    const metrics = await lab.run('n1', [
      process.execPath,
      '-e',
      "fetch('http://127.0.0.1:9464/metrics').then((r)=>r.text()).then((t)=>process.stdout.write(t))",
    ]);
    t.match(
      metrics,
      /vipmesh_arp_requests_received_total\{family="4",iface="eth0"\} [3-9]/,
      'metrics: requests',
    );
    t.match(
      metrics,
      /vipmesh_arp_replies_sent_total\{family="6",iface="eth0"\} [1-9]/,
      'metrics: NDP replies',
    );
    t.match(
      metrics,
      /vipmesh_arp_gratuitous_sent_total\{vip="198.51.100.100"\} [2-9]/,
      'metrics: gratuitous per VIP',
    );
    t.match(metrics, /vipmesh_arp_vips_held 2/);

    const before = await endSniff(dump);
    const replies = before.split('\n').filter((l) => l.includes(`Reply ${VIP} is-at`));
    t.ok(replies.length >= 3, 'replies seen on the bridge');
    t.ok(
      replies.every((l) => l.toLowerCase().startsWith(`${n1.mac} `) || l.includes(`${n1.mac} >`)),
      'tcpdump shows one replier: the holder',
    );

    // Move: the client's entry points at n1; stop n1, start n2, and the client follows without a flush.
    t.match(await lab.run('client', ['ip', 'neigh', 'show', VIP]), n1.mac);
    const burst = await sniff(lab, `arp and ether src ${n2.mac}`);
    t.equal(await stop(a1), 0, 'n1 exits cleanly on SIGTERM');
    t.notMatch(await loAddrs(lab, 'n1'), /198\.51\.100\.100|2001:db8::100/, 'SIGTERM leaves no VIP on lo');
    t.notMatch(
      await lab.run('n1', ['ip', 'maddr', 'show', 'dev', 'eth0']),
      /ff02::1:ff00:100/,
      'and no group',
    );
    t.match(
      await lab.run('n1', ['sysctl', '-n', 'net.ipv4.conf.eth0.arp_ignore']),
      /^0/,
      'arp_ignore restored',
    );
    t.match(
      await lab.run('n1', ['sysctl', '-n', 'net.ipv4.conf.eth0.arp_announce']),
      /^0/,
      'arp_announce restored',
    );
    const gone = await lab.exec('client', ['arping', '-c', '2', '-w', '2', '-I', 'eth0', VIP]);
    t.match(gone.stdout, /Received 0 response/, 'nobody answers for a released VIP');
    await stop(a2);
    const started = Date.now();
    const b2 = await announce(lab, 'n2', ['--vip', VIP], join(state, 'n2'));
    let answer = '';
    await until(
      'the client to reach n2',
      async () => {
        answer = await ask(lab, VIP, 300);
        return answer === 'n2';
      },
      { timeoutMs: 10_000 },
    );
    t.equal(answer, 'n2', `the client reaches n2 after ${Date.now() - started} ms, no cache flush`);
    t.match(
      await lab.run('client', ['ip', 'neigh', 'show', VIP]),
      n2.mac,
      'the client entry now points at n2',
    );
    await sleep(1300);
    const garps = (await endSniff(burst))
      .split('\n')
      .filter((l) => l.includes(`${VIP} tell ${VIP}`) || l.includes(`Reply ${VIP} is-at`));
    t.ok(garps.length >= 4, `tcpdump shows the gratuitous burst (${garps.length} frames within 1.3 s)`);
    t.equal(await stop(b2), 0);
  },
);

t.test(
  'two announcers for one VIP: the second reports the conflict and does not announce',
  { skip },
  async (t) => {
    const { lab, state } = await setup(t);
    const n2 = lab.node('n2');
    const a1 = await announce(lab, 'n1', ['--vip', VIP, '--vip', VIP6], join(state, 'n1'));
    const dump = await sniff(lab, `ether src ${n2.mac}`);
    const a2 = await announce(lab, 'n2', ['--vip', VIP, '--vip', VIP6], join(state, 'n2'));
    t.equal(await a2.exited, 1, 'the second exits with an error');
    t.match(a2.out(), /VIPMESH_ARP_CONFLICT/);
    t.match(a2.out(), /"op":"conflict"/, 'and logs each conflict');
    const frames = await endSniff(dump);
    t.notMatch(
      frames,
      new RegExp(`${VIP} tell ${VIP}|Reply ${VIP} is-at`),
      'no gratuitous ARP from the second',
    );
    t.notMatch(frames, /advertisement/, 'no NA from the second');
    t.notMatch(await loAddrs(lab, 'n2'), /198\.51\.100\.100/, 'and no VIP on its lo');
    const arping = await lab.exec('client', ['arping', '-c', '2', '-w', '2', '-I', 'eth0', VIP]);
    t.match(arping.stdout.toLowerCase(), lab.node('n1').mac, 'the first keeps answering');
    // A second holder that skips the probe: the first sees its gratuitous ARP and raises the conflict.
    const a3 = await announce(lab, 'n2', ['--vip', VIP, '--probe-timeout', '0'], join(state, 'n2b'));
    await until('the holding-time conflict', () => /another MAC claims a VIP we hold/.test(a1.out()), {
      timeoutMs: 5000,
    });
    t.match(
      a1.out(),
      new RegExp(`"op":"conflict","ip":"${VIP}","mac":"${n2.mac}"`),
      'the holder names the other MAC',
    );
    await stop(a3);
    await stop(a1);
  },
);

t.test(
  'link events on a real kernel: a MAC change is re-announced, a down/up interface is served again',
  { skip },
  async (t) => {
    const { lab, state } = await setup(t);
    const a = await announce(lab, 'n1', ['--vip', VIP], join(state, 'n1'));
    t.equal(await ask(lab, VIP).catch(() => ''), '', 'no server yet, but the client resolves the VIP');
    t.match(await lab.run('client', ['ip', 'neigh', 'show', VIP]), lab.node('n1').mac);
    const mac = '02:00:00:00:01:11';
    await lab.run('n1', ['ip', 'link', 'set', 'eth0', 'address', mac]);
    await until(
      'the client to learn the new MAC',
      async () => (await lab.run('client', ['ip', 'neigh', 'show', VIP])).includes(mac),
      { timeoutMs: 5000 },
    );
    t.pass('the client entry follows the MAC change without a flush (gratuitous round on the link event)');
    await lab.run('n1', ['ip', 'link', 'set', 'eth0', 'down']);
    await until('the port to close', () => a.out().includes('stopped announcing on it'), { timeoutMs: 5000 });
    await lab.run('n1', ['ip', 'link', 'set', 'eth0', 'up']);
    await until('the port to reopen', () => (a.out().match(/announcing on interface/g) ?? []).length >= 2, {
      timeoutMs: 5000,
    });
    const arping = await lab.exec('client', ['arping', '-c', '2', '-w', '3', '-I', 'eth0', VIP]);
    t.match(arping.stdout.toLowerCase(), mac, 'answers again after the interface came back');
    t.equal(await stop(a), 0);
  },
);

t.test('SIGHUP and SIGINT stop it as SIGTERM does: VIPs released, sysctls restored', { skip }, async (t) => {
  const { lab, state } = await setup(t);
  for (const signal of ['SIGHUP', 'SIGINT'] as const) {
    const a = await announce(lab, 'n1', ['--vip', VIP, '--vip', VIP6], join(state, 'n1'));
    t.match(await loAddrs(lab, 'n1'), /198\.51\.100\.100\/32 .*lo:vm/, 'the VIP is on lo');
    t.match(await lab.run('n1', ['sysctl', '-n', 'net.ipv4.conf.eth0.arp_ignore']), /^1/);
    t.equal(await stop(a, signal), 0, `exits cleanly on ${signal}`);
    t.match(a.out(), new RegExp(`"op":"stop","signal":"${signal}"`), 'after logging the stop');
    t.notMatch(await loAddrs(lab, 'n1'), /198\.51\.100\.100|2001:db8::100/, `${signal} leaves no VIP on lo`);
    t.match(
      await lab.run('n1', ['sysctl', '-n', 'net.ipv4.conf.eth0.arp_ignore']),
      /^0/,
      'arp_ignore restored',
    );
    t.match(
      await lab.run('n1', ['sysctl', '-n', 'net.ipv4.conf.eth0.arp_announce']),
      /^0/,
      'arp_announce restored',
    );
  }
});

t.test('a crash leaves nothing a restart does not clean', { skip }, async (t) => {
  const { lab, state } = await setup(t);
  const dir = join(state, 'n1');
  const a = await announce(lab, 'n1', ['--vip', VIP, '--vip', VIP6], dir);
  a.child.kill('SIGKILL');
  await a.exited;
  t.match(await loAddrs(lab, 'n1'), /198\.51\.100\.100/, 'a killed announcer leaves its VIPs');
  const b = await announce(lab, 'n1', ['--vip', '198.51.100.101'], dir);
  const lo = await loAddrs(lab, 'n1');
  t.notMatch(
    lo,
    /198\.51\.100\.100\/|2001:db8::100\//,
    'the restart removed both VIPs by their label/protocol',
  );
  t.match(lo, /198\.51\.100\.101/);
  await stop(b);
  t.notMatch(await loAddrs(lab, 'n1'), /198\.51\.100\.10[01]/);
  t.match(
    await lab.run('n1', ['sysctl', '-n', 'net.ipv4.conf.eth0.arp_ignore']),
    /^0/,
    'original arp_ignore back',
  );
});

t.test('errors say which: missing interface, missing capability', { skip }, async (t) => {
  const { lab, state } = await setup(t);
  const run = (argv: string[]) => lab.exec('n1', argv, 30_000);
  const cli = [process.execPath, ...TS, 'src/cli/main.ts', 'announce', '--state-dir', state];
  const [noVip, badVip, badSchedule] = await Promise.all([
    run([...cli, '--interface', 'eth0']),
    run([...cli, '--interface', 'eth0', '--vip', '198.51.100.0/24']),
    run([...cli, '--interface', 'eth0', '--vip', VIP, '--announce-schedule', '0,soon']),
  ]);
  t.match(noVip.stderr, /at least one --vip.*\(VIPMESH_ARP_BAD_VIP\)/);
  t.match(badVip.stderr, /"198.51.100.0\/24" is not a usable VIP.*\(VIPMESH_ARP_BAD_VIP\)/);
  t.match(badSchedule.stderr, /--announce-schedule.*\(VIPMESH_BAD_DURATION\)/);
  t.same([noVip.code, badVip.code, badSchedule.code], [1, 1, 1]);
  const missing = await run([...cli, '--interface', 'eth9', '--vip', VIP]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /interface eth9 does not exist \(VIPMESH_ARP_NO_INTERFACE\)/);
  const noRaw = await run([
    'capsh',
    '--drop=cap_net_raw',
    '--',
    '-c',
    [...cli, '--interface', 'eth0', '--vip', VIP].join(' '),
  ]);
  t.equal(noRaw.code, 1);
  t.match(noRaw.stderr, /CAP_NET_RAW.*\(VIPMESH_ARP_PERMISSION\)/);
  const noAdmin = await run([
    'capsh',
    '--drop=cap_net_admin',
    '--',
    '-c',
    [...cli, '--interface', 'eth0', '--vip', VIP].join(' '),
  ]);
  t.equal(noAdmin.code, 1);
  t.match(noAdmin.stderr, /CAP_NET_ADMIN.*\(VIPMESH_ARP_PERMISSION\)/);
  t.notMatch(await loAddrs(lab, 'n1'), /198\.51\.100\.100/);
});
