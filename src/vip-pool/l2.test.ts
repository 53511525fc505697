import t from 'tap';
import { pool } from '../testing/vip-pool.js';
import { advertisedPools, advertisementsFor, announcersFor, type NodeInfo, nodeSelected } from './l2.js';
import { selectorMatches } from './selector.js';
import type { AdvertisementRule, LabelSelector } from './types.js';

const adv = (name: string, extra: Partial<AdvertisementRule> = {}): AdvertisementRule => ({
  name,
  ipAddressPools: [],
  ipAddressPoolSelectors: [],
  nodeSelectors: [],
  interfaces: [],
  ...extra,
});

t.test('label selectors', async (t) => {
  const cases: Array<{ sel: LabelSelector; labels: Record<string, string>; want: boolean }> = [
    { sel: {}, labels: {}, want: true },
    { sel: { matchLabels: { a: '1' } }, labels: { a: '1', b: '2' }, want: true },
    { sel: { matchLabels: { a: '1' } }, labels: { a: '2' }, want: false },
    { sel: { matchLabels: { a: '1' } }, labels: {}, want: false },
    {
      sel: { matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '2'] }] },
      labels: { a: '2' },
      want: true,
    },
    { sel: { matchExpressions: [{ key: 'a', operator: 'In', values: ['1'] }] }, labels: {}, want: false },
    { sel: { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, labels: {}, want: true },
    {
      sel: { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] },
      labels: { a: '1' },
      want: false,
    },
    { sel: { matchExpressions: [{ key: 'a', operator: 'Exists' }] }, labels: { a: '' }, want: true },
    { sel: { matchExpressions: [{ key: 'a', operator: 'Exists' }] }, labels: {}, want: false },
    { sel: { matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, labels: { a: 'x' }, want: false },
    { sel: { matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, labels: {}, want: true },
    { sel: { matchLabels: { toString: 'x' } }, labels: {}, want: false },
  ];
  for (const c of cases) t.equal(selectorMatches(c.sel, c.labels), c.want, JSON.stringify(c));
});

t.test('which pools an advertisement covers', async (t) => {
  const pools = [
    pool('a', ['198.51.100.0/30']),
    pool('b', ['198.51.100.4/30'], { labels: { zone: 'x' } }),
    pool('c', ['198.51.100.8/30']),
  ];
  t.same(advertisedPools(adv('all'), pools), ['a', 'b', 'c'], 'no pools and no selectors: every pool');
  t.same(advertisedPools(adv('named', { ipAddressPools: ['c', 'missing'] }), pools), ['c']);
  t.same(advertisedPools(adv('sel', { ipAddressPoolSelectors: [{ matchLabels: { zone: 'x' } }] }), pools), [
    'b',
  ]);
  t.same(
    advertisedPools(
      adv('both', { ipAddressPools: ['a'], ipAddressPoolSelectors: [{ matchLabels: { zone: 'x' } }] }),
      pools,
    ),
    ['a', 'b'],
  );
  t.same(
    advertisementsFor(pools[0]!, [adv('x', { ipAddressPools: ['b'] }), adv('y')]).map((a) => a.name),
    ['y'],
  );
});

t.test('which nodes announce a pool, and on which interfaces', async (t) => {
  const p = pool('lan', ['198.51.100.0/24']);
  const nodes: NodeInfo[] = [
    { name: 'pi1', labels: { edge: 'true' } },
    { name: 'pi2', labels: {} },
    { name: 'pi3', labels: { edge: 'true', rack: 'b' } },
  ];
  const edge = [{ matchLabels: { edge: 'true' } }];
  t.ok(nodeSelected(adv('a'), nodes[1]!));
  t.notOk(nodeSelected(adv('a', { nodeSelectors: edge }), nodes[1]!));
  t.same(announcersFor(p, [], nodes), [], 'no advertisement: nobody announces');
  t.same(announcersFor(p, [adv('a', { nodeSelectors: edge, interfaces: ['eth1', 'eth0'] })], nodes), [
    { node: 'pi1', interfaces: ['eth0', 'eth1'] },
    { node: 'pi3', interfaces: ['eth0', 'eth1'] },
  ]);
  t.same(
    announcersFor(
      p,
      [
        adv('a', { nodeSelectors: edge, interfaces: ['eth0'] }),
        adv('b', { nodeSelectors: [{ matchLabels: { rack: 'b' } }], interfaces: ['wlan0', 'eth0'] }),
        adv('c', { ipAddressPools: ['other'] }),
      ],
      nodes,
    ),
    [
      { node: 'pi1', interfaces: ['eth0'] },
      { node: 'pi3', interfaces: ['eth0', 'wlan0'] },
    ],
  );
  t.same(announcersFor(p, [adv('a', { interfaces: ['eth0'] }), adv('b', { nodeSelectors: edge })], nodes), [
    { node: 'pi1', interfaces: undefined },
    { node: 'pi2', interfaces: ['eth0'] },
    { node: 'pi3', interfaces: undefined },
  ]);
});

t.test('advertisement serviceSelectors: which Services an advertisement announces', async (t) => {
  const p = pool('lan', ['198.51.100.0/24']);
  const nodes: NodeInfo[] = [
    { name: 'pi1', labels: { edge: 'true' } },
    { name: 'pi2', labels: {} },
  ];
  const advs = [
    adv('public', { serviceSelectors: [{ matchLabels: { exposure: 'public' } }], interfaces: ['eth0'] }),
    adv('edge', { nodeSelectors: [{ matchLabels: { edge: 'true' } }] }),
  ];
  const web = { labels: { exposure: 'public' }, shared: false };
  t.same(announcersFor(p, advs, nodes, web), [
    { node: 'pi1', interfaces: undefined },
    { node: 'pi2', interfaces: ['eth0'] },
  ]);
  t.same(
    announcersFor(p, advs, nodes, { labels: { exposure: 'internal' }, shared: false }),
    [{ node: 'pi1', interfaces: undefined }],
    'a Service the selector does not match is announced only by the other advertisement',
  );
  t.same(
    announcersFor(p, advs, nodes, { ...web, shared: true }),
    [],
    'an allow-shared-ip Service is not announced where an advertisement selects Services',
  );
  t.same(
    announcersFor(p, [advs[1]!], nodes, { labels: {}, shared: true }),
    [{ node: 'pi1', interfaces: undefined }],
    'without serviceSelectors a shared Service is announced as before',
  );
});
