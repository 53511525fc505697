import t from 'tap';
import { legacyPoolObjects, poolSource } from './legacy-pools.js';
import type { ConfigMap } from './types.js';

function cm(namespace: string | undefined, name: string, config: string): ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, ...(namespace === undefined ? {} : { namespace }) },
    data: { config },
  };
}

t.test('legacy ConfigMaps become marked IPAddressPools; others and broken ones give none', async (t) => {
  const good = cm(
    'lab',
    'metallb',
    'address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.1.0.0/24]\n',
  );
  const broken = cm(
    'metallb-system',
    'config',
    'address-pools:\n- name: b\n  addresses: [10.2.0.9-10.2.0.1]\n',
  );
  const other = cm(undefined, 'app', 'color: blue\n');
  const pools = legacyPoolObjects([good, broken, other]);
  t.same(pools, [
    {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'IPAddressPool',
      metadata: {
        name: 'a',
        namespace: 'lab',
        annotations: { 'vipmesh.io/source': 'ConfigMap lab/metallb' },
      },
      spec: { addresses: ['10.1.0.0/24'], autoAssign: true, avoidBuggyIPs: false },
    },
  ]);
  t.equal(poolSource(pools[0]!), 'ConfigMap lab/metallb');
  t.equal(poolSource({ apiVersion: 'v1', kind: 'IPAddressPool', metadata: { name: 'x' } }), 'IPAddressPool');
  const undated = cm(undefined, 'metallb', good.data?.['config'] ?? '');
  const dated = legacyPoolObjects([
    { ...undated, metadata: { ...undated.metadata, creationTimestamp: '2026-01-01T00:00:00Z' } },
  ]);
  t.equal(dated[0]?.metadata.creationTimestamp, '2026-01-01T00:00:00Z');
  t.equal(dated[0]?.metadata.namespace, 'default');
});
