import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import t from 'tap';
import { createRegistry } from '../metrics.js';
import { serveMetrics, splitHostPort } from './metrics-http.js';
import { registerProcessMetrics } from './process-metrics.js';

t.test('splitHostPort: host:port, [v6]:port, a bare :port; anything else is a bad flag', async (t) => {
  t.same(splitHostPort('127.0.0.1:7472'), { host: '127.0.0.1', port: 7472 });
  t.same(splitHostPort('[::1]:80'), { host: '::1', port: 80 });
  t.same(splitHostPort(':9'), { host: '127.0.0.1', port: 9 });
  t.throws(() => splitHostPort('localhost'), { code: 'VIPMESH_CLUSTER_BAD_FLAG' });
  t.throws(() => splitHostPort('h:70000'), { code: 'VIPMESH_CLUSTER_BAD_FLAG' });
  fc.assert(
    fc.property(fc.ipV4(), fc.integer({ min: 0, max: 65535 }), (host, port) => {
      const r = splitHostPort(`${host}:${port}`);
      return r.host === host && r.port === port;
    }),
  );
  fc.assert(
    fc.property(fc.ipV6(), fc.integer({ min: 0, max: 65535 }), (host, port) => {
      const r = splitHostPort(`[${host}]:${port}`);
      return r.host === host && r.port === port;
    }),
  );
  fc.assert(
    fc.property(fc.string(), (s) => {
      try {
        const r = splitHostPort(s);
        return Number.isInteger(r.port) && r.port >= 0 && r.port <= 65535;
      } catch (err) {
        return (err as { code?: string }).code === 'VIPMESH_CLUSTER_BAD_FLAG';
      }
    }),
  );
});

t.test(
  'the metrics server: text format at /metrics, 404 elsewhere, a taken port is VIPMESH_CLUSTER_LISTEN',
  async (t) => {
    const registry = createRegistry();
    registerProcessMetrics(registry);
    registerProcessMetrics(registry); // twice is harmless
    const m = await serveMetrics('127.0.0.1:0', registry);
    t.teardown(() => m.close());
    const text = await (await fetch(m.url)).text();
    t.match(text, /^process_resident_memory_bytes \d+$/m);
    t.match(text, /^process_cpu_seconds_total [\d.e-]+$/m);
    t.match(text, /^process_open_fds \d+$/m);
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    t.ok(
      text.includes(
        `vipmesh_build_info{version="${version}",node="${process.version}",arch="${process.arch}"} 1`,
      ),
      'vipmesh_build_info names the package version, the Node version and the CPU architecture',
    );
    t.equal((await fetch(m.url.replace('/metrics', '/'))).status, 404);
    const port = new URL(m.url).port;
    await t.rejects(serveMetrics(`127.0.0.1:${port}`, registry), { code: 'VIPMESH_CLUSTER_LISTEN' });
  },
);
