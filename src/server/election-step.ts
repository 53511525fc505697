import type { Etcd3 } from 'etcd3';
import type { AssignmentIndex } from '../api/assignments.js';
import type { Kv } from '../api/kv.js';
import type { ResourceStore } from '../api/store.js';
import { nodeReady } from '../api/types.js';
import {
  type Controllers,
  type Informers,
  type LostNodes,
  type NodeLifecycle,
  startControllers,
} from '../controllers/index.js';
import { Gauge, type Registry } from '../metrics.js';
import { MasterElection } from './election.js';
import { MasterWatch, type ServerAddress } from './master-watch.js';
import { clockOf, type ServerStep } from './server-options.js';

/**
 * The control-plane gauges: whether this server is master (returned, set by the election step; 0 until
 * then), the Nodes by Ready condition (from the node informer) and the VIPs assigned (from the assignment
 * keys).
 */
export function registerServerGauges(
  registry: Registry,
  informers: Informers,
  holders: AssignmentIndex,
): Gauge {
  const master = new Gauge({
    name: 'vipmesh_controlplane_master',
    help: '1 while this server is the elected master (runs the controllers), else 0',
    registers: [registry],
  });
  master.set(0);
  new Gauge({
    name: 'vipmesh_controlplane_nodes',
    help: 'Nodes in the datastore by Ready condition (True, False, Unknown)',
    labelNames: ['ready'],
    registers: [registry],
    collect() {
      const counts: Record<string, number> = { True: 0, False: 0, Unknown: 0 };
      for (const n of informers.nodes.items.values()) counts[nodeReady(n)]! += 1;
      for (const [ready, v] of Object.entries(counts)) this.set({ ready }, v);
    },
  });
  new Gauge({
    name: 'vipmesh_controlplane_vips_assigned',
    help: 'VIPs assigned to a node (the assignment keys)',
    registers: [registry],
    collect() {
      this.set(holders.all.size);
    },
  });
  return master;
}

/** The election as the running server sees it. */
interface ElectionState {
  /** True while this server is the elected master. */
  isMaster(): boolean;
  /** The master's controllers while master. */
  controllers(): Controllers | undefined;
}

/**
 * Step: the master election among the servers on one datastore. The controllers run while this server
 * is master: started on winning, closed on losing, one switch at a time; the node lifecycle and the
 * master gauge follow.
 */
export function startElection(
  { o, log, registry, stack }: ServerStep,
  deps: {
    etcd: Etcd3;
    store: ResourceStore;
    kv: Kv;
    informers: Informers;
    holders: AssignmentIndex;
    lifecycle: NodeLifecycle;
    /** The nodes this server judged lost (the assignment moves their VIPs before the NotReady lands). */
    lost?: LostNodes;
    masterGauge: Gauge;
    /** Told of every change of the role, before the controllers switch (the API VIP moves first). */
    onChange?: (master: boolean) => void;
    /** Where the other servers reach this one (absent: they cannot watch it as master). */
    address?: ServerAddress;
  },
): ElectionState {
  let controllers: Controllers | undefined;
  let switching: Promise<void> = Promise.resolve();
  const election = new MasterElection({
    etcd: deps.etcd,
    name: o.nodeName,
    ttlSeconds: o.electionTtlSeconds ?? 5,
    logger: log.child({ component: 'election' }),
    ...clockOf(o),
    ...(deps.address === undefined ? {} : { address: deps.address }),
    onChange: (master) => {
      deps.onChange?.(master);
      deps.masterGauge.set(master ? 1 : 0);
      deps.lifecycle.setMaster(master);
      switching = switching
        .then(async () => {
          if (master && controllers === undefined && election.master) {
            controllers = await startControllers({
              store: deps.store,
              kv: deps.kv,
              informers: deps.informers,
              holders: deps.holders,
              clusterCidr: o.clusterCidr,
              logger: o.logger.child({ module: 'controllers' }),
              registry,
              host: o.nodeName,
              ...clockOf(o),
              ...(deps.lost === undefined ? {} : { lost: deps.lost }),
            });
          } else if (!master && controllers !== undefined) {
            const c = controllers;
            controllers = undefined;
            await c.close();
          }
        })
        .catch((err: unknown) => log.error({ err }, 'starting or stopping the controllers failed'));
    },
  });
  election.start();
  const watch = new MasterWatch({
    etcd: deps.etcd,
    self: o.nodeName,
    isMaster: () => election.master,
    logger: log.child({ component: 'master-watch' }),
    registry,
    ...clockOf(o),
  });
  watch.start();
  stack.push('election', async () => {
    watch.close();
    await election.close();
    await switching;
  });
  return { isMaster: () => election.master, controllers: () => controllers };
}
