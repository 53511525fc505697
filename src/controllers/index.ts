/**
 * The controllers: IPAM, announcer assignment and subnets run on the elected master only; node lifecycle
 * runs on every server for the agents connected to it. `startControllers()` wires the master's set.
 */
import type { Registry } from 'prom-client';
import { AssignmentIndex } from '../api/assignments.js';
import type { Kv } from '../api/kv.js';
import type { ResourceStore } from '../api/store.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { AssignmentController } from './assignment.js';
import { BackendIndex } from './backends.js';
import { EventReaper } from './events.js';
import { Informer } from './informer.js';
import { IpamController } from './ipam.js';
import type { LostNodes } from './lost-nodes.js';
import { SubnetController } from './subnets.js';

export { BackendIndex, lbServiceOf } from './backends.js';
export { EndpointHealthWriter } from './endpoint-health.js';
export { ENDPOINTS_HEALTHY, type EndpointHealthStatus } from './endpoint-health-plan.js';
export { LostNodes } from './lost-nodes.js';
export { NodeLifecycle, SERVER_ANNOTATION, withReady } from './node-lifecycle.js';
export { DRAIN_ANNOTATION } from './placement.js';

/** The informers every server keeps (the relay and the controllers share them). */
export interface Informers {
  nodes: Informer<'nodes'>;
  services: Informer<'services'>;
  pools: Informer<'ipaddresspools'>;
  configmaps: Informer<'configmaps'>;
  l2advertisements: Informer<'l2advertisements'>;
  endpoints: Informer<'endpoints'>;
  endpointslices: Informer<'endpointslices'>;
}

/** Make (not start) the informers. */
export function createInformers(store: ResourceStore, logger: Logger, clock?: Clock): Informers {
  const o = { logger, ...(clock === undefined ? {} : { clock }) };
  return {
    nodes: new Informer(store, 'nodes', o),
    services: new Informer(store, 'services', o),
    pools: new Informer(store, 'ipaddresspools', o),
    configmaps: new Informer(store, 'configmaps', o),
    l2advertisements: new Informer(store, 'l2advertisements', o),
    endpoints: new Informer(store, 'endpoints', o),
    endpointslices: new Informer(store, 'endpointslices', o),
  };
}

/** Options of {@link startControllers}. */
interface ControllersOptions {
  store: ResourceStore;
  kv: Kv;
  informers: Informers;
  /** The stored VIP holders, started (the server's); without it the controllers keep one of their own. */
  holders?: AssignmentIndex;
  clusterCidr: string | readonly string[];
  logger: Logger;
  clock?: Clock;
  registry?: Registry;
  /** This server's name (events' source host). */
  host?: string;
  /** The nodes this server judged lost, for the assignment to move their VIPs before the NotReady lands. */
  lost?: LostNodes;
}

/** The master's controllers, running. */
export interface Controllers {
  ipam: IpamController;
  assignment: AssignmentController;
  subnets: SubnetController;
  /** Resolves when every controller is idle (tests). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** Start IPAM, assignment and subnets (the informers must be started). */
export async function startControllers(o: ControllersOptions): Promise<Controllers> {
  const base = {
    store: o.store,
    ...(o.clock === undefined ? {} : { clock: o.clock }),
    ...(o.registry === undefined ? {} : { registry: o.registry }),
    ...(o.host === undefined ? {} : { host: o.host }),
  };
  const i = o.informers;
  const ipam = new IpamController({
    ...base,
    kv: o.kv,
    informers: {
      services: i.services,
      pools: i.pools,
      configmaps: i.configmaps,
      l2advertisements: i.l2advertisements,
    },
    logger: o.logger.child({ controller: 'ipam' }),
  });
  const backends = new BackendIndex({
    endpoints: i.endpoints,
    endpointslices: i.endpointslices,
    nodes: i.nodes,
  });
  backends.start();
  let own: AssignmentIndex | undefined;
  let holders = o.holders;
  if (holders === undefined) {
    own = new AssignmentIndex({
      kv: o.kv,
      logger: o.logger.child({ component: 'assignments' }),
      ...(o.clock === undefined ? {} : { clock: o.clock }),
    });
    await own.start();
    holders = own;
  }
  const assignment = new AssignmentController({
    ...base,
    kv: o.kv,
    holders,
    informers: i,
    backends,
    allocations: () => ipam.allocations(),
    onAllocations: (fn) => {
      ipam.on('change', fn);
      return () => ipam.off('change', fn);
    },
    logger: o.logger.child({ controller: 'assignment' }),
    ...(o.lost === undefined ? {} : { lost: o.lost }),
  });
  const subnets = new SubnetController({
    store: o.store,
    kv: o.kv,
    nodes: i.nodes,
    clusterCidr: o.clusterCidr,
    logger: o.logger.child({ controller: 'subnets' }),
  });
  const reaper = new EventReaper({
    store: o.store,
    logger: o.logger.child({ controller: 'events' }),
    ...(o.clock === undefined ? {} : { clock: o.clock }),
  });
  await ipam.start();
  assignment.start();
  subnets.start();
  reaper.start();
  return {
    ipam,
    assignment,
    subnets,
    async idle() {
      for (let k = 0; k < 3; k++) {
        await ipam.idle();
        await assignment.idle();
        await subnets.idle();
      }
    },
    async close() {
      await Promise.all([ipam.close(), assignment.close(), subnets.close(), reaper.close()]);
      backends.close();
      await own?.close();
    },
  };
}
