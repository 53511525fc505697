/**
 * The IPAM controller over an in-memory datastore: what it writes per Service, how many datastore calls
 * that takes, how many it has in flight, and what a new master (a restart, a failover) writes again.
 */
import t, { type Test } from 'tap';
import type { Kv, KvWriteResult } from '../api/kv.js';
import { MemoryKv } from '../api/memory-kv.js';
import { ResourceStore } from '../api/store.js';
import type { IPAddressPool, Service } from '../api/types.js';
import { silentLogger } from '../log.js';
import { svc } from '../testing/controlplane.js';
import { FakeClock } from '../testing/fake-clock.js';
import { until } from '../testing/until.js';
import { createInformers, type Informers } from './index.js';
import { IpamController } from './ipam.js';

const log = silentLogger();
const PREFIX = '/vipmesh/ipam/';

/**
 * A MemoryKv whose writes answer on a later turn of the event loop (as a real datastore's do), counting
 * the reads of allocation keys and the allocation writes in flight.
 */
class CountingKv extends MemoryKv {
  allocationReads = 0;
  inFlight = 0;
  maxInFlight = 0;
  override get(key: string) {
    if (key.startsWith(PREFIX)) this.allocationReads++;
    return super.get(key);
  }
  override put(key: string, value: Buffer, expect: number): Promise<KvWriteResult> {
    return this.#slow(key, () => super.put(key, value, expect));
  }
  override delete(key: string, expect: number): Promise<KvWriteResult> {
    return this.#slow(key, () => super.delete(key, expect));
  }
  async #slow(key: string, fn: () => Promise<KvWriteResult>): Promise<KvWriteResult> {
    if (!key.startsWith(PREFIX)) {
      await new Promise((r) => setImmediate(r));
      return fn();
    }
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((r) => setImmediate(r));
      return await fn();
    } finally {
      this.inFlight--;
    }
  }
}

const pool: IPAddressPool = {
  apiVersion: 'metallb.io/v1beta1',
  kind: 'IPAddressPool',
  metadata: { name: 'lan', namespace: 'default' },
  spec: { addresses: ['198.51.100.0/24', '198.18.0.0/22'] },
};

async function setup(t: Test, kv: Kv = new CountingKv()) {
  const clock = new FakeClock();
  const store = new ResourceStore({ kv, clock });
  const informers = createInformers(store, log, clock);
  await Promise.all(Object.values(informers).map((i: Informers[keyof Informers]) => i.start()));
  t.teardown(() => Promise.all(Object.values(informers).map((i: Informers[keyof Informers]) => i.close())));
  const start = async () => {
    const ipam = new IpamController({ store, kv, informers, logger: log, clock, host: 's1' });
    await ipam.start();
    t.teardown(() => ipam.close());
    return ipam;
  };
  return { store, informers, start };
}

function allocated(s: Service): boolean {
  return (s.status?.loadBalancer?.ingress?.length ?? 0) > 0;
}

t.test('many Services: one allocation write each, no reads, a bounded number in flight', async (t) => {
  const kv = new CountingKv();
  const { store, informers, start } = await setup(t, kv);
  await store.create('ipaddresspools', pool);
  const ipam = await start();
  const N = 400;
  await Promise.all(Array.from({ length: N }, (_, i) => store.create('services', svc(`s${i}`))));
  await until('every Service allocated', async () => {
    await ipam.idle();
    return [...informers.services.items.values()].filter(allocated).length === N;
  });
  t.equal((await kv.list(PREFIX)).pairs.length, N, 'one allocation key per Service');
  t.equal(kv.allocationReads, 0, 'no allocation key read before writing it (the revision is known)');
  t.ok(kv.maxInFlight > 1, `allocation writes pipelined (${kv.maxInFlight} at once)`);
  t.ok(kv.maxInFlight <= 128, `and bounded: ${kv.maxInFlight} at once for ${N} Services`);
  const events = (await store.list('events')).items;
  t.equal(events.filter((e) => e.reason === 'IPAllocated').length, N, 'one IPAllocated event per Service');
});

t.test('a new master writes no event for a Service whose status already says it is served', async (t) => {
  const { store, informers, start } = await setup(t);
  await store.create('ipaddresspools', pool);
  const first = await start();
  await store.create('services', svc('web'));
  await until('web allocated', async () => {
    await first.idle();
    const s = informers.services.items.get('default/web');
    return s !== undefined && allocated(s);
  });
  await first.close();
  const before = (await store.list('events')).items.length;
  const web = await store.get('services', 'web');

  const second = await start();
  await second.idle();
  t.equal((await store.list('events')).items.length, before, 'no new event');
  t.equal(
    (await store.get('services', 'web')).metadata.resourceVersion,
    web.metadata.resourceVersion,
    'no status write',
  );
  t.same(
    second.allocations().map((a) => a.ips),
    [web.status?.loadBalancer?.ingress?.map((i) => i.ip)],
    'the allocation restored',
  );
});

t.test('an allocation key written by someone else is overwritten, not a failed pass', async (t) => {
  const kv = new CountingKv();
  const { store, informers, start } = await setup(t, kv);
  await store.create('ipaddresspools', pool);
  const ipam = await start();
  await store.create('services', svc('web', '198.51.100.7'));
  await until('web allocated', async () => {
    await ipam.idle();
    const s = informers.services.items.get('default/web');
    return s !== undefined && allocated(s);
  });
  // Another writer (an earlier master finishing a write) changes the key behind the controller's back.
  const key = `${PREFIX}default/web`;
  const cur = (await kv.get(key))!;
  const stale = JSON.parse(cur.value.toString());
  const other = Buffer.from(JSON.stringify({ ...stale, ips: ['198.51.100.9'] }));
  t.ok((await kv.put(key, other, cur.modRevision)).ok, 'another writer changed the key');
  // The Service moves to another pinned address: the controller writes over the other writer's value.
  const web = await store.get('services', 'web');
  await store.update('services', { ...web, spec: { ...web.spec, loadBalancerIP: '198.51.100.8' } });
  await until('web moved', async () => {
    await ipam.idle();
    return (
      informers.services.items.get('default/web')?.status?.loadBalancer?.ingress?.[0]?.ip === '198.51.100.8'
    );
  });
  const stored = JSON.parse((await kv.get(key))!.value.toString());
  t.same(stored.ips, ['198.51.100.8'], 'the controller’s allocation is what is stored');
  t.same(
    ipam.allocations().map((a) => a.ips),
    [['198.51.100.8']],
  );

  // Deleting the Service deletes the key, whatever its revision.
  t.ok((await kv.put(key, cur.value, (await kv.get(key))!.modRevision)).ok, 'and again');
  await store.delete('services', 'web');
  await until('the allocation deleted', async () => {
    await ipam.idle();
    return (await kv.get(key)) === undefined;
  });
  t.same(ipam.allocations(), [], 'and forgotten');
});
