/**
 * host-gw in real namespaces: three nodes on one bridge (198.51.100.11-13/25, 2001:db8::11-13/64), each
 * with pod addresses 198.18.N.1 and 2001:db8::N:1 on lo (pod subnets 198.18.N.0/24 and 2001:db8::N:0/112:
 * the lab's IPv6 range is one /64), each running the reconciler in its own namespace
 * (test/netns/hostgw-fixture.ts).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { parseSubnetEnv, VIPMESH_RT_PROTOCOL } from '../../src/flannel-hostgw/index.js';
import { canUseNetns, Lab } from './lab.js';

const root = canUseNetns();
const P = String(VIPMESH_RT_PROTOCOL);
const N = [1, 2, 3];

type Event = Record<string, unknown> & { type: string };

/** One fixture process: JSON commands in, JSON events out. */
class Fixture {
  readonly #events: Event[] = [];
  readonly #waiters: Array<() => void> = [];
  readonly stderr: string[] = [];

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      this.#events.push(JSON.parse(line) as Event);
      for (const w of this.#waiters.splice(0)) w();
    });
    child.stderr!.on('data', (d: Buffer) => this.stderr.push(d.toString()));
  }

  send(cmd: unknown): void {
    this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
  }

  /** Every event of `type` received so far (consumed). */
  takeAll(type: string): Event[] {
    const all = this.#events.filter((e) => e.type === type);
    for (const e of all) this.#events.splice(this.#events.indexOf(e), 1);
    return all;
  }

  /** The next event of `type` (consumed), waiting up to `ms`. */
  async next(type: string, ms = 20_000): Promise<Event> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.#events.findIndex((e) => e.type === type);
      if (i >= 0) return this.#events.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) {
        const seen = JSON.stringify(this.#events);
        throw new Error(
          `no ${type} event within ${ms} ms; other events: ${seen}; stderr: ${this.stderr.join('')}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Send leases and wait for the pass's result. */
  async apply(leases: unknown): Promise<Event> {
    this.send(leases);
    return this.next('result');
  }
}

const lease = (n: number) => ({
  node: `n${n}`,
  podCIDRs: [`198.18.${n}.0/24`, `2001:db8::${n}:0/112`],
  nodeIPs: [`198.51.100.${10 + n}`, `2001:db8::${10 + n}`],
});

/** vipmesh's routes in a node, both families, as `dst via gw dev if`. */
async function routes(lab: Lab, node: string): Promise<string[]> {
  const list: Array<{ dst: string; gateway?: string; dev: string }> = [];
  for (const fam of ['-4', '-6']) {
    list.push(...JSON.parse((await lab.run(node, ['ip', '-j', fam, 'route', 'show', 'proto', P])) || '[]'));
  }
  return list.map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}`).sort();
}

const expected = (self: number, nodes = N) =>
  nodes
    .filter((n) => n !== self)
    .flatMap((n) => [
      `198.18.${n}.0/24 via 198.51.100.${10 + n} dev eth0`,
      `2001:db8::${n}:0/112 via 2001:db8::${10 + n} dev eth0`,
    ])
    .sort();

t.test(
  'host-gw routes between three node namespaces',
  { skip: root ? false : 'needs root and ip netns' },
  async (t) => {
    const lab = await Lab.create();
    t.teardown(() => lab.destroy());
    const dir = await mkdtemp(join(tmpdir(), 'vipmesh-hostgw-netns-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const fx = new Map<number, Fixture>();
    for (const n of N) {
      await lab.addNode(`n${n}`, { ipv4: `198.51.100.${10 + n}/25`, ipv6: `2001:db8::${10 + n}/64` });
      await lab.run(`n${n}`, ['ip', 'addr', 'add', `198.18.${n}.1/32`, 'dev', 'lo']);
      await lab.run(`n${n}`, ['ip', '-6', 'addr', 'add', `2001:db8::${n}:1/128`, 'dev', 'lo']);
    }
    for (const n of N) {
      const child = lab.spawn(`n${n}`, [
        process.execPath,
        // Under tap, the same loaders as this test (TypeScript, coverage); run directly, tsx.
        ...(process.execArgv.some((a) => a.includes('import')) ? process.execArgv : ['--import', 'tsx']),
        'test/netns/hostgw-fixture.ts',
        `n${n}`,
        'eth0',
        '198.18.0.0/16,2001:db8::/64',
        join(dir, `n${n}`, 'subnet.env'),
      ]);
      fx.set(n, new Fixture(child));
    }
    for (const n of N) {
      const ready = await fx.get(n)!.next('ready', 60_000);
      t.equal(ready['iface'], 'eth0', `n${n} runs on eth0`);
    }

    const all = N.map((n) => lease(n));
    for (const n of N) {
      const r = await fx.get(n)!.apply(all);
      t.equal(r['replaced'], 4, `n${n} installs two routes per family`);
    }
    for (const n of N) {
      t.same(
        await routes(lab, `n${n}`),
        expected(n),
        `n${n} holds exactly the routes to the other nodes' subnets`,
      );
      const fwd = await lab.run(`n${n}`, [
        'sysctl',
        '-n',
        'net.ipv4.ip_forward',
        'net.ipv6.conf.all.forwarding',
      ]);
      t.equal(fwd.trim(), '1\n1', `n${n} forwards IPv4 and IPv6`);
      const env = parseSubnetEnv(await readFile(join(dir, `n${n}`, 'subnet.env'), 'utf8'));
      t.same(
        Object.fromEntries(env),
        {
          FLANNEL_NETWORK: '198.18.0.0/16',
          FLANNEL_SUBNET: `198.18.${n}.1/24`,
          FLANNEL_IPV6_NETWORK: '2001:db8::/64',
          FLANNEL_IPV6_SUBNET: `2001:db8::${n}:1/112`,
          FLANNEL_MTU: '1500',
          FLANNEL_IPMASQ: 'false',
        },
        `n${n} subnet.env`,
      );
    }
    for (const a of N) {
      for (const b of N) {
        if (a === b) continue;
        const ping = await lab.exec(`n${a}`, ['ping', '-c1', '-W2', '-I', `198.18.${a}.1`, `198.18.${b}.1`]);
        t.equal(ping.code, 0, `pod n${a} (198.18.${a}.1) pings pod n${b} (198.18.${b}.1)`);
        const ping6 = await lab.exec(`n${a}`, [
          'ping',
          '-6',
          '-c1',
          '-W2',
          '-I',
          `2001:db8::${a}:1`,
          `2001:db8::${b}:1`,
        ]);
        t.equal(ping6.code, 0, `pod n${a} (2001:db8::${a}:1) pings pod n${b} (2001:db8::${b}:1)`);
      }
    }

    // A route vipmesh did not make, inside the cluster CIDR and outside it, survives everything below.
    await lab.run('n1', ['ip', 'route', 'add', '198.18.99.0/24', 'via', '198.51.100.13', 'proto', 'static']);
    await lab.run('n1', ['ip', 'route', 'add', '198.51.100.200/32', 'dev', 'eth0', 'proto', 'boot']); // ip hides "proto boot"
    const foreign = async () =>
      (await lab.run('n1', ['ip', 'route', 'show', 'table', 'main']))
        .split('\n')
        .filter((l) => /198\.18\.99\.0|198\.51\.100\.200/.test(l));

    await t.test('a route deleted by hand is back within 1 s', async (t) => {
      const t0 = Date.now();
      await lab.run('n1', ['ip', 'route', 'del', '198.18.2.0/24']);
      let back = -1;
      while (Date.now() - t0 < 3_000) {
        const out = await lab.run('n1', ['ip', 'route', 'show', '198.18.2.0/24', 'proto', P]);
        if (out.includes('via 198.51.100.12')) {
          back = Date.now() - t0;
          break;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      t.ok(
        back >= 0 && back <= 1_000,
        `restored after ${back} ms (at most 1 s, measured with ip route polling)`,
      );
      t.equal((await fx.get(1)!.next('restoring'))['dst'], '198.18.2.0/24');
      const ping = await lab.exec('n1', ['ping', '-c1', '-W2', '-I', '198.18.1.1', '198.18.2.1']);
      t.equal(ping.code, 0, 'pod traffic flows again');
      // The same for IPv6 (its routes carry the kernel's default metric 1024).
      const t1 = Date.now();
      await lab.run('n1', ['ip', '-6', 'route', 'del', '2001:db8::2:0/112']);
      let back6 = -1;
      while (Date.now() - t1 < 3_000) {
        const out = await lab.run('n1', ['ip', '-6', 'route', 'show', '2001:db8::2:0/112', 'proto', P]);
        if (out.includes('via 2001:db8::12')) {
          back6 = Date.now() - t1;
          break;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      t.ok(back6 >= 0 && back6 <= 1_000, `IPv6 route restored after ${back6} ms`);
      t.equal((await fx.get(1)!.next('restoring'))['dst'], '2001:db8::2:0/112');
    });

    await t.test('removing a lease removes its routes on the others', async (t) => {
      const two = [lease(1), lease(2)];
      for (const n of [1, 2]) {
        const r = await fx.get(n)!.apply(two);
        t.equal(r['deleted'], 2, `n${n} deletes n3's two routes`);
        t.same(await routes(lab, `n${n}`), expected(n, [1, 2]), `n${n} no longer routes n3's subnets`);
      }
      const ping = await lab.exec('n1', ['ping', '-c1', '-W1', '-I', '198.18.1.1', '198.18.3.1']);
      t.not(ping.code, 0, 'the departed node is no longer reachable');
    });

    await t.test('a lease whose node IP is off-link is refused by name; nothing else changes', async (t) => {
      // 198.51.100.200 is outside n1's 198.51.100.0/25: not on eth0's link.
      const n4 = { node: 'n4', podCIDRs: ['198.18.4.0/24'], nodeIPs: ['198.51.100.200'] };
      const r = await fx.get(1)!.apply([lease(1), lease(2), n4]);
      t.same(
        (r['refused'] as Array<{ node: string; code: string }>).map((x) => [x.node, x.code]),
        [['n4', 'VIPMESH_HOSTGW_NEXTHOP_OFFLINK']],
      );
      const ev = await fx.get(1)!.next('refused');
      t.match(ev['message'], /node n4.*198\.51\.100\.200.*eth0/);
      t.same(await routes(lab, 'n1'), expected(1, [1, 2]), 'only the routable lease is installed');
    });

    await t.test(
      'addresses added to lo (VIPs) start no pass; an address that puts n4 on-link starts one',
      async (t) => {
        const f = fx.get(1)!;
        f.takeAll('pass');
        for (const ip of ['198.51.100.210', '198.51.100.211', '198.51.100.212'])
          await lab.run('n1', ['ip', 'addr', 'add', `${ip}/32`, 'dev', 'lo']);
        await lab.run('n1', ['ip', 'addr', 'add', '198.51.100.129/25', 'dev', 'eth0']);
        const passes: Event[] = [];
        while (passes.at(-1)?.['replaced'] !== 1) passes.push(await f.next('pass'));
        t.same(passes, [{ type: 'pass', full: true, replaced: 1 }], 'one full pass, for the eth0 address');
        t.match(
          await lab.run('n1', ['ip', 'route', 'show', '198.18.4.0/24']),
          /via 198\.51\.100\.200 dev eth0/,
        );
        await lab.run('n1', ['ip', 'addr', 'del', '198.51.100.129/25', 'dev', 'eth0']);
        for (const ip of ['198.51.100.210', '198.51.100.211', '198.51.100.212'])
          await lab.run('n1', ['ip', 'addr', 'del', `${ip}/32`, 'dev', 'lo']);
      },
    );

    await t.test(
      'a conflicting route to a leased subnet is replaced; other foreign routes are never touched',
      async (t) => {
        // Someone routes n3's subnet elsewhere before n3's lease comes back.
        await lab.run('n1', [
          'ip',
          'route',
          'add',
          '198.18.3.0/24',
          'via',
          '198.51.100.12',
          'proto',
          'static',
        ]);
        const r = await fx.get(1)!.apply([lease(1), lease(2), lease(3)]);
        t.equal(r['replaced'], 2);
        const n3 = await lab.run('n1', ['ip', 'route', 'show', '198.18.3.0/24']);
        t.match(n3.trim(), new RegExp(`^198\\.18\\.3\\.0/24 via 198\\.51\\.100\\.13 dev eth0 proto ${P}\\b`));
        t.equal(n3.trim().split('\n').length, 1, 'the conflicting route was replaced, not duplicated');
        await fx.get(1)!.apply('resync');
        const lines = await foreign();
        t.equal(lines.length, 2, 'both foreign routes are still there');
        t.ok(lines.some((l) => l.includes('198.18.99.0/24 via 198.51.100.13') && l.includes('proto static')));
        t.ok(
          lines.some((l) => l.startsWith('198.51.100.200 dev eth0')),
          'the proto boot route is still there',
        );
      },
    );

    // Shut the daemons down: routes stay (the data plane outlives the daemon).
    for (const f of fx.values()) f.child.stdin!.end();
    await Promise.all(
      [...fx.values()].map(
        (f) => new Promise((r) => (f.child.exitCode !== null ? r(0) : f.child.once('exit', r))),
      ),
    );
    t.same(await routes(lab, 'n2'), expected(2, [1, 2]), 'routes outlive the daemon');

    // With no daemon left in n1: five requests in one datagram, two of them failing.
    const batch = new Fixture(
      lab.spawn('n1', [
        process.execPath,
        ...(process.execArgv.some((a) => a.includes('import')) ? process.execArgv : ['--import', 'tsx']),
        'test/netns/hostgw-fixture.ts',
        'batch',
        'eth0',
      ]),
    );
    t.same(
      (await batch.next('batch'))['codes'],
      ['ok', 'ENETUNREACH', 'ok', 'ESRCH', 'ok'],
      'each request of a batch gets its own outcome (one ack per datagram, errors always reported)',
    );
    const made = (await lab.run('n1', ['ip', 'route', 'show', 'proto', P]))
      .split('\n')
      .filter((l) => l.includes('198.18.5'));
    t.same(made.map((l) => l.split(' ')[0]).sort(), ['198.18.51.0/24', '198.18.53.0/24', '198.18.54.0/24']);
  },
);
