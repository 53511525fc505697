/**
 * Snapshot benchmark: save and restore time and file size for 10,000 Services (keys and JSON as the
 * resource store writes them), on the embedded datastore (SQLite) and on etcd 3.4, both started here. The
 * peer figure is etcd's own tool in the same run: `etcdctl snapshot save` against each datastore, and
 * `etcdctl snapshot restore` of the etcd file. Prints one figure per line and the ratios.
 *
 *   node --import tsx bench/snapshot.ts [--quick]
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { restoreSnapshot, saveSnapshot } from '../src/snapshot/index.js';
import { startEtcd } from '../src/testing/datastores.js';

const exec = promisify(execFile);
const quick = process.argv.includes('--quick');
const SERVICES = quick ? 2000 : 10_000;
const RUNS = quick ? 1 : 3;
const log = silentLogger();
const work = mkdtempSync(join(tmpdir(), 'vipmesh-bench-snap-'));

/** 10,000 Services with an address each, 16 writers. */
async function fill(url: string): Promise<void> {
  const cs = Array.from({ length: 16 }, () => new Etcd3({ hosts: url }));
  let next = 0;
  await Promise.all(
    cs.map(async (c) => {
      for (;;) {
        const i = next++;
        if (i >= SERVICES) return;
        const name = `svc-${i}`;
        const s = {
          apiVersion: 'v1',
          kind: 'Service',
          spec: {
            type: 'LoadBalancer',
            ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
            selector: { app: name },
          },
          metadata: {
            name,
            namespace: 'default',
            uid: `uid-${i}`,
            creationTimestamp: new Date().toISOString(),
          },
          status: {
            loadBalancer: { ingress: [{ ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }] },
          },
        };
        await c.put(`/registry/services/default/${name}`).value(JSON.stringify(s));
      }
    }),
  );
  for (const c of cs) c.close();
}

/** Median of `RUNS` timings of `fn`, ms. */
async function median(fn: (run: number) => Promise<void>): Promise<number> {
  const ms: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    await fn(r);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return ms[Math.floor(ms.length / 2)]!;
}

const etcdctl = (...args: string[]) => exec('etcdctl', args, { env: { ...process.env, ETCDCTL_API: '3' } });
const line = (what: string, v: number, unit: string) =>
  console.log(`${what.padEnd(58)} ${v.toFixed(unit === 'ms' ? 0 : 2)} ${unit}`);

async function measure(kind: string, url: string, stop: () => Promise<void>): Promise<void> {
  await fill(url);
  const client = new Etcd3({ hosts: url });
  let ours = '';
  const save = await median(async (r) => {
    ours = join(work, `${kind}-vipmesh-${r}`);
    await saveSnapshot(client, ours, url);
  });
  let theirs = '';
  const peerSave = await median(async (r) => {
    theirs = join(work, `${kind}-etcdctl-${r}.db`);
    await etcdctl(`--endpoints=${url}`, 'snapshot', 'save', theirs);
  });
  client.close();
  await stop();
  const mib = (f: string) => statSync(f).size / 2 ** 20;
  console.log(`\n${kind}: ${SERVICES} Services`);
  line(`${kind} vipmesh snapshot save`, save, 'ms');
  line(`${kind} etcdctl snapshot save (peer)`, peerSave, 'ms');
  line(`${kind} save ratio vipmesh/etcdctl`, save / peerSave, 'x');
  line(`${kind} file size vipmesh`, mib(ours), 'MiB');
  line(`${kind} file size etcdctl (peer)`, mib(theirs), 'MiB');
  const restore = await median(async (r) => {
    await restoreSnapshot({ file: ours, dbDir: join(work, `${kind}-restored-${r}`), logger: log });
  });
  line(`${kind} vipmesh snapshot restore (into the embedded datastore)`, restore, 'ms');
  if (kind === 'etcd') {
    const peerRestore = await median(async (r) => {
      await etcdctl('snapshot', 'restore', theirs, `--data-dir=${join(work, `etcdctl-restored-${r}`)}`);
    });
    line('etcd etcdctl snapshot restore (peer, into an etcd data dir)', peerRestore, 'ms');
    line('etcd restore ratio vipmesh/etcdctl', restore / peerRestore, 'x');
  }
}

try {
  console.log(`(a shared 2-core machine: figures move with the other load on it; median of ${RUNS})`);
  const dir = join(work, 'kine');
  const ds = await startDatastore({ dataDir: dir, listenAddress: '127.0.0.1:0', logger: log });
  await measure('sqlite', ds.url, () => ds.close());
  const etcd = await startEtcd();
  await measure('etcd', etcd.endpoint, () => etcd.stop());
} finally {
  rmSync(work, { recursive: true, force: true });
}
