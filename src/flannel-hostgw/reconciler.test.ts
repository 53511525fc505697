import { once } from 'node:events';
import t from 'tap';
import { isVipmeshError } from '../errors.js';
import { createRegistry } from '../metrics.js';
import { FakeClock } from '../testing/fake-clock.js';
import { FakeNetlink } from '../testing/fake-netlink.js';
import { type Refusal, RouteReconciler, VIPMESH_RT_PROTOCOL } from './index.js';
import type { Lease } from './lease.js';
import type { KernelRoute } from './netlink.js';

const P = VIPMESH_RT_PROTOCOL;
const lease = (n: number, ip = `198.51.100.${10 + n}`): Lease => ({
  node: `n${n}`,
  podCIDRs: [`198.18.${n}.0/24`],
  nodeIPs: [ip],
});
const table = (nl: FakeNetlink) =>
  nl.routes
    .filter((r) => r.protocol === P)
    .map((r) => `${r.dst} via ${r.gateway}`)
    .sort();
const settle = () => new Promise((r) => setImmediate(r));

function setup(opts: { nodeName?: string } = {}) {
  const nl = new FakeNetlink();
  const clock = new FakeClock();
  const registry = createRegistry();
  const rec = new RouteReconciler(nl, { nodeName: opts.nodeName ?? 'n0', iface: 'eth0', clock, registry });
  return { nl, clock, rec, registry };
}

t.test('installs one route per other node, then follows lease changes incrementally', async (t) => {
  const { nl, rec, registry } = setup();
  const foreign: KernelRoute = {
    family: 4,
    dst: '198.18.77.0/24',
    gateway: '198.51.100.77',
    ifindex: 2,
    protocol: 4,
    table: 254,
  };
  nl.routes.push(foreign);
  await rec.start();
  t.same(nl.calls, [], 'nothing done before leases are known');
  const r1 = await rec.setLeases([lease(0), lease(1), lease(2), lease(3)]);
  t.same(table(nl), [
    '198.18.1.0/24 via 198.51.100.11',
    '198.18.2.0/24 via 198.51.100.12',
    '198.18.3.0/24 via 198.51.100.13',
  ]);
  t.equal(r1.replaced, 3);
  t.ok(r1.full, 'first pass reads the table');
  nl.calls = [];
  const r2 = await rec.setLeases([lease(0), lease(1), lease(3, '198.51.100.33'), lease(4)]);
  t.notOk(r2.full, 'a lease change does not re-read the table');
  t.same(nl.calls.sort(), ['delete 198.18.2.0/24', 'replace 198.18.3.0/24', 'replace 198.18.4.0/24']);
  t.same(table(nl), [
    '198.18.1.0/24 via 198.51.100.11',
    '198.18.3.0/24 via 198.51.100.33',
    '198.18.4.0/24 via 198.51.100.14',
  ]);
  t.ok(nl.routes.includes(foreign), 'a route of another protocol is never touched');
  t.same(rec.wanted.length, 3);
  const text = await registry.metrics();
  t.match(text, /vipmesh_hostgw_routes 3/);
  t.match(text, /vipmesh_hostgw_route_changes_total\{op="delete"\} 1/);
  await rec.close();
  t.ok(nl.closed);
  t.equal(nl.routes.length, 4, 'routes stay after close');
});

t.test('a vipmesh route deleted by hand is put back at once', async (t) => {
  const { nl, rec } = setup();
  await rec.start();
  await rec.setLeases([lease(1), lease(2)]);
  const restoring = once(rec, 'restoring');
  nl.deleteByHand('198.18.2.0/24');
  t.same(await restoring, ['198.18.2.0/24']);
  await once(rec, 'synced');
  t.same(table(nl), ['198.18.1.0/24 via 198.51.100.11', '198.18.2.0/24 via 198.51.100.12']);
  await rec.close();
});

t.test(
  'a foreign route replacing ours for a leased subnet is replaced back; other foreign routes stay',
  async (t) => {
    const { nl, rec } = setup();
    await rec.start();
    await rec.setLeases([lease(1)]);
    nl.addByHand({
      family: 4,
      dst: '198.18.1.0/24',
      gateway: '198.51.100.99',
      ifindex: 2,
      protocol: 4,
      table: 254,
    });
    nl.addByHand({
      family: 4,
      dst: '198.18.50.0/24',
      gateway: '198.51.100.99',
      ifindex: 2,
      protocol: 4,
      table: 254,
    });
    await once(rec, 'synced');
    t.same(table(nl), ['198.18.1.0/24 via 198.51.100.11']);
    t.ok(nl.routes.some((r) => r.dst === '198.18.50.0/24' && r.protocol === 4));
    // A stray route of our protocol (say, left by a previous run) for an unleased subnet is removed.
    nl.addByHand({
      family: 4,
      dst: '198.18.60.0/24',
      gateway: '198.51.100.60',
      ifindex: 2,
      protocol: P,
      table: 254,
    });
    await once(rec, 'synced');
    t.same(table(nl), ['198.18.1.0/24 via 198.51.100.11']);
    await rec.close();
  },
);

t.test(
  'start clears stale vipmesh routes once leases are known; off-link leases refused by name',
  async (t) => {
    const { nl, rec } = setup();
    nl.routes.push({
      family: 4,
      dst: '198.18.9.0/24',
      gateway: '198.51.100.19',
      ifindex: 2,
      protocol: P,
      table: 254,
    });
    const refused: Refusal[] = [];
    rec.on('refused', (r) => refused.push(r));
    const pending = rec.setLeases([lease(1), lease(5, '203.0.113.5')]);
    await rec.start();
    const res = await pending;
    t.same(table(nl), ['198.18.1.0/24 via 198.51.100.11']);
    t.equal(res.deleted, 1);
    t.same(
      refused.map((r) => [r.node, r.error.code]),
      [['n5', 'VIPMESH_HOSTGW_NEXTHOP_OFFLINK']],
    );
    t.match(refused[0]!.error.message, /n5/);
    await rec.setLeases([lease(1), lease(5, '203.0.113.5')]);
    t.equal(refused.length, 1, 'a refusal is reported once, not on every pass');
    t.equal(rec.refused.length, 1);
    // An address on another interface (a VIP on lo): no pass, the lease stays refused.
    nl.addresses.push({ ifindex: 1, family: 4, address: '203.0.113.1', prefixLen: 24 });
    const lists = () => nl.calls.filter((c) => c === 'list').length;
    const before = lists();
    let synced = 0;
    rec.on('synced', () => synced++);
    nl.emitLater({ kind: 'address', ifindex: 1 });
    // The fake answers in microtasks: a pass started by the event would have listed the routes by now.
    await new Promise((r) => setImmediate(r));
    t.equal(lists(), before, 'no full pass for an address on another interface');
    t.equal(synced, 0);
    // The address appears on the interface: the lease becomes routable on the next full pass.
    nl.addresses.push({ ifindex: 2, family: 4, address: '203.0.113.1', prefixLen: 24 });
    nl.emitLater({ kind: 'address', ifindex: 2 });
    await once(rec, 'synced');
    t.equal(lists(), before + 1, 'one full pass for an address on the interface');
    t.same(table(nl), ['198.18.1.0/24 via 198.51.100.11', '198.18.5.0/24 via 203.0.113.5']);
    await rec.close();
  },
);

t.test('failed changes are reported with their errno and retried', async (t) => {
  const { nl, rec, clock } = setup();
  await rec.start();
  const errors: string[] = [];
  rec.on('routeError', (e) => errors.push(String((e.cause as { code?: string }).code)));
  nl.failNext = { op: 'replace', errno: 'ENOBUFS' };
  const res = await rec.setLeases([lease(1)]);
  t.equal(res.errors.length, 1);
  t.ok(isVipmeshError(res.errors[0], 'VIPMESH_HOSTGW_NETLINK'));
  t.same(errors, ['ENOBUFS']);
  t.same(table(nl), []);
  const next = once(rec, 'synced');
  clock.advance(1_000);
  await next;
  t.same(table(nl), ['198.18.1.0/24 via 198.51.100.11'], 'retried after retryMs');
  // A delete racing with someone else's (ESRCH) is not an error.
  nl.deleteByHand('198.18.1.0/24');
  nl.failNext = { op: 'delete', errno: 'ESRCH' };
  await once(rec, 'synced');
  const gone = await rec.setLeases([]);
  t.same(gone.errors, [], 'ESRCH on delete means already gone');
  t.equal(gone.deleted, 0);
  await rec.resync(); // the fake still holds it (it failed without deleting): the full pass removes it
  t.same(table(nl), []);
  // A failed table read is retried too.
  nl.failNext = { op: 'list', errno: 'EBUSY' };
  const r = await rec.resync();
  t.equal(r.errors.length, 1);
  clock.advance(1_000);
  await once(rec, 'synced');
  await rec.close();
});

t.test('periodic full resync repairs what no notification reported', async (t) => {
  const { nl, rec, clock } = setup();
  await rec.start();
  await rec.setLeases([lease(1), lease(2)]);
  nl.routes = nl.routes.filter((r) => r.dst !== '198.18.1.0/24'); // vanished silently (link flap)
  nl.calls = [];
  const synced = once(rec, 'synced');
  clock.advance(10_000);
  const [res] = await synced;
  t.ok(res.full);
  t.same(nl.calls, ['list', 'replace 198.18.1.0/24']);
  t.same(table(nl), ['198.18.1.0/24 via 198.51.100.11', '198.18.2.0/24 via 198.51.100.12']);
  await rec.close();
  t.equal(clock.pending, 0, 'close clears the timers');
});

t.test('close answers requests it will never serve', async (t) => {
  const { rec } = setup();
  const pending = rec.setLeases([lease(1)]); // never started
  await rec.close();
  const r = await pending;
  t.equal(r.errors[0]?.code, 'VIPMESH_HOSTGW_CLOSED');
  await rec.close();
});

t.test('missing interface and overrun', async (t) => {
  const nl = new FakeNetlink();
  const rec = new RouteReconciler(nl, { nodeName: 'n0', iface: 'nope0', clock: new FakeClock() });
  await t.rejects(rec.start(), { code: 'VIPMESH_HOSTGW_NO_IFACE' });
  await rec.close();
  const s = setup();
  await s.rec.start();
  await s.rec.setLeases([lease(1)]);
  s.nl.calls = [];
  s.nl.emitLater({ kind: 'overrun' });
  await once(s.rec, 'synced');
  t.same(s.nl.calls, ['list'], 'lost notifications lead to a full pass');
  await settle();
  await s.rec.close();
});

t.test('dual stack: IPv6 routes at the kernel default metric are recognised as in place', async (t) => {
  const { nl, rec } = setup();
  nl.addresses.push({ ifindex: 2, family: 6, address: '2001:db8::10', prefixLen: 64 });
  await rec.start();
  const l: Lease = {
    node: 'n1',
    podCIDRs: ['198.18.1.0/24', '2001:db8:42:1::/64'],
    nodeIPs: ['198.51.100.11', '2001:db8::11'],
  };
  await rec.setLeases([l]);
  t.same(table(nl), ['198.18.1.0/24 via 198.51.100.11', '2001:db8:42:1::/64 via 2001:db8::11']);
  nl.calls = [];
  const r = await rec.resync();
  t.equal(r.unchanged, 2);
  t.same(nl.calls, ['list']);
  await rec.close();
});
