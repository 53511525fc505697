import { Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * A fresh metrics registry. Each module takes a Registry through its constructor and registers its own
 * `vipmesh_<module>_*` metrics on it; the server exposes one registry at --metrics-bind-address.
 */
export function createRegistry(): Registry {
  return new Registry();
}
