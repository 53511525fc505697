import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { MemoryKv } from '../api/memory-kv.js';
import { silentLogger } from '../log.js';
import { BOOTSTRAP_KEY, sharedCredentials } from './bootstrap.js';

t.test(
  'sharedCredentials: the first server stores, the next takes them; garbage is VIPMESH_CLUSTER_BOOTSTRAP',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'vipmesh-bootstrap-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const kv = new MemoryKv();
    const a = await sharedCredentials(kv, join(dir, 'a'), ['198.51.100.1']);
    const b = await sharedCredentials(kv, join(dir, 'b'), ['198.51.100.2']);
    t.equal(b.joinToken, a.joinToken);
    t.equal(b.adminToken, a.adminToken);
    t.equal(b.caCertPem, a.caCertPem);
    const again = await sharedCredentials(kv, join(dir, 'b'), []);
    t.equal(again.caHash, a.caHash, 'a restart reads the same');
    const bad = new MemoryKv();
    await bad.put(BOOTSTRAP_KEY, Buffer.from('{not json'), 0);
    await t.rejects(sharedCredentials(bad, join(dir, 'c'), []), { code: 'VIPMESH_CLUSTER_BOOTSTRAP' });
    t.ok(silentLogger());
  },
);
