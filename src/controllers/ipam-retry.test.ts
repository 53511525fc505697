import t from 'tap';
import type { KvGuard } from '../api/kv.js';
import { MemoryKv } from '../api/memory-kv.js';
import { ResourceStore } from '../api/store.js';
import { silentLogger } from '../log.js';
import { FakeClock } from '../testing/fake-clock.js';
import { until } from '../testing/until.js';
import { createInformers } from './index.js';
import { IpamController } from './ipam.js';

/** A MemoryKv whose allocation writes fail while `failing` is set. */
class FlakyKv extends MemoryKv {
  failing = false;
  override async put(key: string, value: Buffer, expect: number, guard?: KvGuard) {
    if (this.failing && key.startsWith('/vipmesh/ipam/')) throw new Error('datastore unavailable');
    return super.put(key, value, expect, guard);
  }
}

t.test(
  'a Service whose allocation failed to persist gets its address on the retry, not the next resync',
  async (t) => {
    const kv = new FlakyKv();
    const clock = new FakeClock();
    const log = silentLogger();
    const store = new ResourceStore({ kv });
    const inf = createInformers(store, log, clock);
    await Promise.all(Object.values(inf).map((i) => i.start()));
    const ipam = new IpamController({ store, kv, informers: inf, logger: log, clock });
    t.teardown(async () => {
      await ipam.close();
      await Promise.all(Object.values(inf).map((i) => i.close()));
    });
    await store.create('ipaddresspools', {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'IPAddressPool',
      metadata: { name: 'lan', namespace: 'default' },
      spec: { addresses: ['198.51.100.200/30'] },
    });
    await ipam.start();
    await ipam.idle();
    kv.failing = true;
    const svc = (name: string) => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'default' },
      spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }] },
    });
    await store.create('services', svc('web'));
    await until('the informer saw web', () => inf.services.items.has('default/web'));
    await until('the pass ran and failed', async () => {
      await ipam.idle();
      return clock.pending > 0;
    });
    const ingress = async (name: string) =>
      (await store.get('services', name, 'default')).status?.loadBalancer?.ingress?.map((i) => i.ip) ?? [];
    t.same(await ingress('web'), [], 'nothing allocated while the datastore fails');
    t.same(ipam.allocations(), []);
    kv.failing = false;
    clock.advance(1000);
    await until('the retry ran', async () => {
      await ipam.idle();
      return (await ingress('web')).length === 1;
    });
    t.same(await ingress('web'), ['198.51.100.200'], 'the retry allocated web');
    t.same(
      ipam.allocations().map((a) => [a.service, a.ips]),
      [['default/web', ['198.51.100.200']]],
      'and persisted it',
    );
    await store.create('services', svc('db'));
    await until('db allocated', async () => {
      await ipam.idle();
      return (await ingress('db')).length === 1;
    });
    t.same(await ingress('db'), ['198.51.100.201'], 'the next Service gets the next address: nothing leaked');
  },
);
