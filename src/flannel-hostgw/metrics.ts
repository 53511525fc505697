import { Counter, Gauge, Histogram, type Registry } from '../metrics.js';

/** What the metrics read of one reconcile pass (the reconciler's `ReconcileResult` is one). */
interface PassFigures {
  /** True when the pass read the kernel's table. */
  full: boolean;
  replaced: number;
  deleted: number;
  refused: readonly unknown[];
  errors: readonly unknown[];
  durationMs: number;
}

/** The module's Prometheus metrics (`vipmesh_hostgw_*`) on an injected registry. */
export interface HostGwMetrics {
  record(result: PassFigures, wanted: number): void;
}

/** Register the host-gw metrics on `registry` (once per registry). */
export function hostGwMetrics(registry: Registry): HostGwMetrics {
  const routes = new Gauge({
    name: 'vipmesh_hostgw_routes',
    help: 'Routes to other nodes pod subnets that the current leases call for',
    registers: [registry],
  });
  const changes = new Counter({
    name: 'vipmesh_hostgw_route_changes_total',
    help: 'Route changes made, by operation (replace, delete)',
    labelNames: ['op'],
    registers: [registry],
  });
  const errors = new Counter({
    name: 'vipmesh_hostgw_route_errors_total',
    help: 'Route changes the kernel refused (retried)',
    registers: [registry],
  });
  const refused = new Gauge({
    name: 'vipmesh_hostgw_refused_leases',
    help: 'Lease subnets not routed (off-link node IP, conflict, malformed)',
    registers: [registry],
  });
  const passes = new Histogram({
    name: 'vipmesh_hostgw_reconcile_seconds',
    help: 'Duration of reconcile passes, by kind (full reads the kernel table, incremental does not)',
    labelNames: ['kind'],
    buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2],
    registers: [registry],
  });
  return {
    record(result, wanted) {
      routes.set(wanted);
      if (result.replaced > 0) changes.inc({ op: 'replace' }, result.replaced);
      if (result.deleted > 0) changes.inc({ op: 'delete' }, result.deleted);
      if (result.errors.length > 0) errors.inc(result.errors.length);
      refused.set(result.refused.length);
      passes.observe({ kind: result.full ? 'full' : 'incremental' }, result.durationMs / 1000);
    },
  };
}
