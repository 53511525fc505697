/**
 * The load balancer with the real kernel: `vipmesh agent` holds the VIPs a stand-in server pushes and
 * serves the pushed Services with its nftables table; a client in its own namespace reaches them with curl
 * and nc; backends run in their own namespaces.
 */
import t from 'tap';
import type { LbService } from '../../src/api/agent-protocol.js';
import { TOPIC_SERVICES, TOPIC_VIPS } from '../../src/api/agent-protocol.js';
import { until } from '../../src/testing/until.js';
import { canUseNetns } from './lab.js';
import { BACKENDS, CLIENT, HOLDER, LbLab, POD } from './lb-fixture.js';

const WEB = '198.51.100.10';
const WEB6 = '2001:db8::10';
const LOCAL = '198.51.100.11';
const DNS = '198.51.100.12';
const SELF = '198.51.100.13';
/** Checks fast enough for a test: 200 ms apart, down after 2 failures, up after 1 success. */
const CHECK = {
  type: 'tcp' as const,
  path: '/',
  expectStatus: [200, 399] as [number, number],
  intervalMs: 200,
  timeoutMs: 500,
  rise: 1,
  fall: 2,
};

const base = (name: string, vips: string[]): LbService => ({
  namespace: 'default',
  name,
  vips,
  ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
  endpoints: [],
  externalTrafficPolicy: 'Cluster',
  sessionAffinity: 'None',
  affinityTimeoutSeconds: 10_800,
  algorithm: 'random',
  healthCheck: CHECK,
});
const ep = (ip: string, extra: Partial<LbService['endpoints'][number]> = {}) => ({
  ip,
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' as const }],
  ready: true,
  ...extra,
});

const services: LbService[] = [
  {
    ...base('web', [WEB, WEB6]),
    endpoints: Object.values(BACKENDS).flatMap((b) => [ep(b.ipv4), ep(b.ipv6)]),
  },
  {
    ...base('local', [LOCAL]),
    externalTrafficPolicy: 'Local',
    endpoints: [ep(POD.ipv4, { nodeName: 'holder' })],
  },
  {
    ...base('dns', [DNS]),
    ports: [
      { name: 'dns-udp', protocol: 'UDP', port: 53, targetPort: 'dns' },
      { name: 'dns-tcp', protocol: 'TCP', port: 53, targetPort: 'dns-tcp' },
    ],
    endpoints: [
      {
        ip: BACKENDS.b2.ipv4,
        ports: [
          { name: 'dns', port: 5353, protocol: 'UDP' },
          { name: 'dns-tcp', port: 5353, protocol: 'TCP' },
        ],
        ready: true,
      },
    ],
  },
  { ...base('self', [SELF]), ports: [{ protocol: 'TCP', port: 80, targetPort: 9090 }] },
];

/** Who answered `n` requests to `url` (the first word of each body); a failed request is `FAILED`. */
async function answers(lab: LbLab, url: string, n: number, extra: string[] = []): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await lab.curl(url, extra))?.split(' ')[0] ?? 'FAILED');
  return out;
}

t.test(
  'the data plane on the VIP holder',
  { skip: canUseNetns() ? false : 'needs root and ip netns' },
  async (t) => {
    const lab = await LbLab.create();
    t.teardown(() => lab.destroy());
    for (const name of Object.keys(BACKENDS))
      await lab.startBackend(name, ['--http', '8080', '--udp', '5353', '--tcp', '5353']);
    await lab.startBackend('pod', ['--http', '8080']);
    await lab.startBackend('holder', ['--http', '9090']);
    await lab.startServer();
    lab.push(TOPIC_VIPS, { vips: [WEB, WEB6, LOCAL, DNS, SELF].map((ip) => ({ ip })) });
    lab.push(TOPIC_SERVICES, { services });
    await lab.startAgent();

    await t.test('a client reaches VIP:80 and gets answers from the three backends on 8080', async (t) => {
      await until('the VIP answers', () => lab.curl(`http://${WEB}/`), { timeoutMs: 20_000 });
      const seen = new Set(await answers(lab, `http://${WEB}/`, 30));
      t.same([...seen].sort(), ['b1', 'b2', 'b3'], lab.stderr);
      const seen6 = new Set(await answers(lab, `http://[${WEB6}]/`, 30));
      t.same([...seen6].sort(), ['b1', 'b2', 'b3'], 'IPv6 too');
    });

    await t.test('a health report reaches the server', async (t) => {
      const r = await lab.report(
        (r) => r.services.find((s) => s.name === 'web')?.endpoints.filter((e) => e.healthy).length === 6,
        'six healthy web endpoints',
      );
      const web = r.services.find((s) => s.name === 'web')!;
      t.equal(web.serving, true);
      t.same(
        web.endpoints.find((e) => e.ip === BACKENDS.b1.ipv4),
        { ip: BACKENDS.b1.ipv4, port: 8080, healthy: true },
      );
    });

    await t.test(
      'a killed backend is out of rotation within the fall time, and no later request fails',
      async (t) => {
        const killedAt = Date.now();
        await lab.killBackend('b1');
        await lab.report(
          (r) =>
            r.services.find((s) => s.name === 'web')?.endpoints.find((e) => e.ip === BACKENDS.b1.ipv4)
              ?.healthy === false,
          'b1 reported unhealthy',
          // fall × (interval + timeout), with room for a busy machine
          10_000,
        );
        t.comment(`b1 out after ${Date.now() - killedAt} ms (fall ${CHECK.fall} × ${CHECK.intervalMs} ms)`);
        // Both families' entries go in the same update: once the report says so, the table has it.
        await until('b1 out of the table', async () => !(await lab.table())?.includes(BACKENDS.b1.ipv4));
        const after = await answers(lab, `http://${WEB}/`, 30);
        t.notOk(after.includes('FAILED'), `no failed request: ${after.join(' ')}`);
        t.notOk(after.includes('b1'));
      },
    );

    await t.test('Local keeps the client address (the backend sees it)', async (t) => {
      const body = await until('the Local VIP answers', () => lab.curl(`http://${LOCAL}/`));
      t.equal(body, `pod ${CLIENT.ipv4}`);
      const web = await lab.curl(`http://${WEB}/`);
      t.match(
        web,
        new RegExp(` ${HOLDER.ipv4.replaceAll('.', '\\.')}$`),
        'Cluster masquerades (the backend sees the holder)',
      );
    });

    await t.test('UDP 53 and TCP 53 on one VIP both work', async (t) => {
      const udp = await lab.c.lab.exec('client', ['sh', '-c', `echo q | nc -u -w1 ${DNS} 53`]);
      t.equal(udp.stdout.trim(), 'b2', udp.stderr);
      const tcp = await lab.c.lab.exec('client', ['sh', '-c', `nc -w2 ${DNS} 53 </dev/null`]);
      t.equal(tcp.stdout.trim(), 'b2', tcp.stderr);
    });

    await t.test('no endpoints: the holder’s own targetPort', async (t) => {
      t.equal((await lab.curl(`http://${SELF}/`))?.split(' ')[0], 'holder');
    });

    await t.test('hairpin: a process on the holder reaches a VIP it holds', async (t) => {
      const r = await lab.c.lab.exec('holder', ['curl', '-sS', '--max-time', '3', `http://${WEB}/`]);
      t.match(r.stdout, /^b[23] /, r.stderr);
    });

    await t.test('a flushed or hand-edited table is restored', async (t) => {
      await lab.c.lab.run('holder', ['nft', 'flush', 'table', 'inet', 'vipmesh']);
      t.equal(
        await lab.curl(`http://${WEB}/`, ['--max-time', '1']),
        undefined,
        'flushed: the VIP is not balanced',
      );
      // The compare runs every 10 s by default.
      await until('restored', () => lab.curl(`http://${WEB}/`, ['--max-time', '1']), { timeoutMs: 25_000 });
      await lab.c.lab.run('holder', ['nft', 'delete', 'table', 'inet', 'vipmesh']);
      await until('re-created', async () => (await lab.table())?.includes('s_default_web_'), {
        timeoutMs: 25_000,
      });
      t.pass('restored after a flush and after a delete');
    });

    await t.test('the table is gone after the agent stops', async (t) => {
      t.ok(await lab.table());
      t.equal(await lab.stopAgent(), 0);
      t.equal(await lab.table(), undefined);
    });
  },
);
