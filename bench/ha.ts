/**
 * HA benchmark, in network namespaces (needs root and the Debian etcd): three `vipmesh server` processes
 * on embedded etcd (`--cluster-init` plus two joins, `--api-vip`) and one agent.
 *   - formation: from three cold servers to the third one ready, against the peer: the same three etcd
 *     members started by hand with a static `--initial-cluster` (plain HTTP, no joins) in the same run;
 *   - failover, TRIALS times (default 3): the master's cable cut -> the API VIP answering ARP from the new
 *     master -> a `vipmesh apply` through the VIP succeeding; against the peer: the etcd leader's cable cut
 *     -> the other members reporting a new leader, the floor under any etcd-lease election.
 *   node --import tsx bench/ha.ts [--trials N] [--election-ttl 5s]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { summarize } from '../src/lab/failover.js';
import { canUseNetns } from '../src/lab/index.js';
import { ClusterLab, until } from '../test/netns/cluster-fixture.js';

const { values } = parseArgs({
  options: { trials: { type: 'string', default: '3' }, 'election-ttl': { type: 'string', default: '5s' } },
});
const TTL = values['election-ttl'];
const TRIALS = Number(values.trials);
const SERVERS = { s1: '198.51.100.11', s2: '198.51.100.12', s3: '198.51.100.13' } as const;
const PEERS = { e1: '198.51.100.41', e2: '198.51.100.42', e3: '198.51.100.43' } as const;
const API_VIP = '198.51.100.100';
type S = keyof typeof SERVERS;
type E = keyof typeof PEERS;

if (!canUseNetns()) {
  console.log('bench/ha: needs root and network namespaces; skipped');
  process.exit(0);
}

const nodes = Object.fromEntries(
  [...Object.entries(SERVERS), ...Object.entries(PEERS), ['a1', '198.51.100.21']].map(([n, ip]) => [
    n,
    { ipv4: ip },
  ]),
);
const c = await ClusterLab.create(nodes);

/**
 * When an ARP request from a1 for `ip` is first answered by a MAC other than `old`. One `arping -c 1 -w 1`
 * waits a whole second when nobody answers (its deadline is whole seconds), which would round every
 * figure up to the next second; so a new one starts every 50 ms, each overlapping the last, and the time
 * is when the first answer from another MAC comes back.
 */
async function answeredByAnother(ip: string, old: string): Promise<number> {
  const deadline = performance.now() + 60_000;
  return new Promise<number>((resolve, reject) => {
    let done = false;
    const tick = () => {
      if (done) return;
      if (performance.now() > deadline) {
        done = true;
        reject(new Error(`${ip}: no answer from another MAC within 60 s`));
        return;
      }
      void c.arpMac('a1', ip).then((mac) => {
        if (!done && mac !== undefined && mac !== old) {
          done = true;
          resolve(performance.now());
        }
      });
      setTimeout(tick, 50);
    };
    tick();
  });
}
try {
  // Formation: vipmesh.
  const t0 = performance.now();
  const args = (s: S, extra: string[]) =>
    c.serverArgs(s, SERVERS[s], [...extra, '--api-vip', API_VIP, '--election-ttl', TTL]);
  await c.start('s1', args('s1', ['--cluster-init']), /vipmesh server is up/, 60_000);
  const token = c.token('s1', 'token');
  for (const s of ['s2', 's3'] as const) {
    await c.start(
      s,
      args(s, ['--server', `https://${SERVERS.s1}:6443`, '--token', token]),
      /vipmesh server is up/,
      90_000,
    );
  }
  const formVipmesh = performance.now() - t0;

  // Formation: the peer, three etcd members on a static initial cluster.
  const initial = Object.entries(PEERS)
    .map(([n, ip]) => `${n}=http://${ip}:2380`)
    .join(',');
  const t1 = performance.now();
  for (const [n, ip] of Object.entries(PEERS)) {
    c.lab.spawn(n, [
      'etcd',
      `--name=${n}`,
      `--data-dir=${join(c.dir, `etcd-${n}`)}`,
      `--listen-client-urls=http://${ip}:2379,http://127.0.0.1:2379`,
      `--advertise-client-urls=http://${ip}:2379`,
      `--listen-peer-urls=http://${ip}:2380`,
      `--initial-advertise-peer-urls=http://${ip}:2380`,
      `--initial-cluster=${initial}`,
      '--log-level=error',
    ]);
  }
  const healthy = async (n: E) =>
    (
      await c.lab.exec(n, ['curl', '-s', '--max-time', '1', 'http://127.0.0.1:2379/health'], 5000)
    ).stdout.includes('"true"');
  await until(
    'peer etcd healthy',
    async () => (await Promise.all((Object.keys(PEERS) as E[]).map(healthy))).every(Boolean),
    60_000,
  );
  const formPeer = performance.now() - t1;
  console.log(
    `formation: vipmesh 3 servers (init + 2 joins, sequential) ${formVipmesh.toFixed(0)} ms; peer: 3 etcd members, static bootstrap ${formPeer.toFixed(0)} ms; ratio ${(formVipmesh / formPeer).toFixed(1)}x`,
  );

  await c.start(
    'a1',
    c.agentArgs('a1', '198.51.100.21', [`https://${API_VIP}:6443`], token),
    /vipmesh agent is up/,
    30_000,
  );
  const admin = c.token('s1', 'admin-token');
  const servers = Object.keys(SERVERS) as S[];
  const vipAnswers: number[] = [];
  const applies: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const master = await until(
      'a master',
      async () => {
        for (const s of servers) if (await c.isMaster(s)) return s;
        return undefined;
      },
      60_000,
    );
    await until(
      'the API VIP on the master',
      async () => (await c.arpMac('a1', API_VIP)) === c.lab.node(master).mac,
      30_000,
    );
    const f = join(c.dir, `svc-${i}.yaml`);
    writeFileSync(
      f,
      `apiVersion: v1\nkind: Service\nmetadata: { name: bench-${i} }\nspec: { type: LoadBalancer, ports: [{ port: 80, protocol: TCP }] }\n`,
    );
    const cut = performance.now();
    await c.lab.cut(master);
    vipAnswers.push((await answeredByAnother(API_VIP, c.lab.node(master).mac)) - cut);
    await until(
      'apply through the API VIP',
      async () => {
        const r = await c.vipmesh(
          'a1',
          ['apply', '-f', f, '--server', `https://${API_VIP}:6443`, '--token', admin],
          15_000,
        );
        return r.code === 0;
      },
      60_000,
      20,
    );
    applies.push(performance.now() - cut);
    await c.lab.restore(master);
    await until(
      'all three members healthy again',
      async () => (await c.etcdctl(master, ['endpoint', 'health', '--cluster'])).code === 0,
      60_000,
    );
  }

  // The peer: cut the etcd leader, time until a survivor reports a leader again.
  const peerElections: number[] = [];
  const peers = Object.keys(PEERS) as E[];
  const leaderOf = async (n: E) => {
    const r = await c.lab.exec(
      n,
      [
        'etcdctl',
        '--endpoints=http://127.0.0.1:2379',
        '--command-timeout=1s',
        'endpoint',
        'status',
        '-w',
        'json',
      ],
      5000,
    );
    const st = JSON.parse(r.stdout || '[]') as Array<{
      Status: { leader: string; header: { member_id: string } };
    }>;
    return st[0]?.Status;
  };
  for (let i = 0; i < TRIALS; i++) {
    const leader = await until(
      'a peer leader',
      async () => {
        for (const n of peers) {
          const st = await leaderOf(n);
          if (st !== undefined && st.leader === st.header.member_id) return { n, id: st.leader };
        }
        return undefined;
      },
      30_000,
    );
    const cut = performance.now();
    await c.lab.cut(leader.n);
    await until(
      'a new peer leader',
      async () => {
        for (const n of peers.filter((p) => p !== leader.n)) {
          const st = await leaderOf(n);
          if (st !== undefined && st.leader !== '0' && st.leader !== leader.id) return true;
        }
        return undefined;
      },
      30_000,
      20,
    );
    peerElections.push(performance.now() - cut);
    await c.lab.restore(leader.n);
    await until('peer healthy', async () => (await Promise.all(peers.map(healthy))).every(Boolean), 60_000);
  }
  const v = summarize(vipAnswers);
  const a = summarize(applies);
  const p = summarize(peerElections);
  console.log(
    `master cable cut -> API VIP answers from the new master: median ${v.median.toFixed(0)} ms, max ${v.max.toFixed(0)} ms (n=${v.n}, election TTL ${TTL})`,
  );
  console.log(
    `master cable cut -> vipmesh apply through the API VIP succeeds: median ${a.median.toFixed(0)} ms, max ${a.max.toFixed(0)} ms (n=${a.n})`,
  );
  console.log(
    `peer: etcd leader cable cut -> new leader: median ${p.median.toFixed(0)} ms (n=${p.n}); API VIP / etcd election ratio ${(v.median / p.median).toFixed(1)}x`,
  );
} finally {
  await c.destroy();
}
