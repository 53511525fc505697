import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Counter, Gauge, type Registry } from '../metrics.js';

/**
 * The process metrics Prometheus conventions name (`process_resident_memory_bytes`, CPU, start time, heap).
 * prom-client's collectDefaultMetrics is not used: some of its gauges end in `_total`, which
 * `promtool check metrics` rejects.
 */
export function registerProcessMetrics(registry: Registry): void {
  if (registry.getSingleMetric('process_resident_memory_bytes') !== undefined) return;
  const registers = [registry];
  new Gauge({
    name: 'vipmesh_build_info',
    help: 'Always 1; the labels say which vipmesh version runs on which Node version and CPU architecture.',
    labelNames: ['version', 'node', 'arch'],
    registers,
  }).set({ version: vipmeshVersion(), node: process.version, arch: process.arch }, 1);
  new Gauge({
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size in bytes.',
    registers,
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  new Gauge({
    name: 'nodejs_heap_used_bytes',
    help: 'V8 heap in use, in bytes.',
    registers,
    collect() {
      this.set(process.memoryUsage().heapUsed);
    },
  });
  new Counter({
    name: 'process_cpu_seconds_total',
    help: 'User and system CPU time spent in seconds.',
    registers,
    collect() {
      const u = process.cpuUsage();
      this.reset();
      this.inc((u.user + u.system) / 1e6);
    },
  });
  const start = Date.now() / 1000 - process.uptime();
  new Gauge({
    name: 'process_start_time_seconds',
    help: 'Start time of the process since the epoch in seconds.',
    registers,
  }).set(Math.round(start));
  new Gauge({
    name: 'process_open_fds',
    help: 'Number of open file descriptors.',
    registers,
    collect() {
      try {
        this.set(readdirSync('/proc/self/fd').length);
      } catch {
        this.set(0);
      }
    },
  });
}

/** vipmesh's version from the package.json nearest above this file (works from src/ and dist/). */
function vipmeshVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const path = join(dir, 'package.json');
    if (existsSync(path)) return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}
