import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { METHOD_HEALTH, METHOD_LEAVE, type NodeRegistration } from '../api/agent-protocol.js';
import { AssignmentIndex } from '../api/assignments.js';
import type { Kv } from '../api/kv.js';
import type { ResourceStore } from '../api/store.js';
import { systemClock } from '../clock.js';
import { recordEvent } from '../controllers/events.js';
import {
  BackendIndex,
  createInformers,
  EndpointHealthWriter,
  type Informers,
  type LostNodes,
  NodeLifecycle,
} from '../controllers/index.js';
import { FileNodePasswordStore, joinAuthorizer, type ServerCredentials } from '../pki/index.js';
import { NODE_IN_USE_CLOSE_CODE, TunnelServer } from '../tunnel/index.js';
import { SERVERS_PREFIX } from './election.js';
import { LeaveHandler } from './leave.js';
import { Relay } from './relay.js';
import { clockOf, type ServerStep } from './server-options.js';
import { ServiceRelay } from './service-relay.js';
import { EtcdSessionClaims } from './session-claims.js';

/** Step: one informer per resource, each started (its first list done) before the next. */
export async function startInformers(
  { o, log, stack }: ServerStep,
  store: ResourceStore,
): Promise<Informers> {
  const informers = createInformers(store, log.child({ component: 'informer' }), o.clock);
  for (const inf of Object.values(informers) as Array<Informers['nodes']>) {
    await inf.start();
    stack.push('informer', () => inf.close());
  }
  return informers;
}

/**
 * Step: the tunnel server the agents connect to (served on the API port by the listener step). New node
 * names are limited in rate and number; a deleted Node's password is forgotten, so its name may join again
 * (and no longer counts against the node limit). A node's session is claimed in the datastore
 * ({@link EtcdSessionClaims}), so no two servers of one datastore hold a session for one node.
 */
export function startTunnel(
  { o, registry, stack }: ServerStep,
  creds: ServerCredentials,
  informers: Informers,
  etcd: Etcd3,
): TunnelServer {
  const tunnelLog = o.logger.child({ module: 'tunnel' });
  // A node's live session is cluster-wide: a key under this server's lease, refused by the other servers.
  let tunnel: TunnelServer | undefined;
  const claims = new EtcdSessionClaims({
    etcd,
    server: o.nodeName,
    ttlSeconds: o.electionTtlSeconds ?? 5,
    logger: tunnelLog,
    evict: (node, reason) => {
      tunnelLog.warn({ node }, reason);
      tunnel?.sessions.get(node)?.close(reason, NODE_IN_USE_CLOSE_CODE);
    },
    ...clockOf(o),
  });
  stack.push('session-claims', () => claims.close());
  const passwords = new FileNodePasswordStore(join(o.dataDir, 'server', 'node-passwords.json'));
  const forget = ({ type, object }: { type: string; object: { metadata: { name: string } } }) => {
    if (type !== 'DELETED') return;
    passwords.delete(object.metadata.name).catch((err: unknown) => {
      tunnelLog.warn({ err, node: object.metadata.name }, 'could not forget the deleted node password');
    });
  };
  informers.nodes.on('change', forget);
  stack.push('node-passwords', () => void informers.nodes.off('change', forget));
  tunnel = new TunnelServer({
    claims,
    authorize: joinAuthorizer({
      joinToken: creds.joinToken,
      passwords,
      logger: tunnelLog,
      maxNewNodes: o.maxNewNodesPerMinute ?? 32,
      newNodesWindowMs: 60_000,
      ...(o.maxNodes === undefined ? {} : { maxNodes: o.maxNodes }),
      ...clockOf(o),
    }),
    caCertPem: creds.caCertPem,
    heartbeatMs: o.heartbeatMs,
    misses: o.nodeLostAfter,
    // Fast beats are for the liveness datagrams; the tunnel's own verdict keeps a busy loop's 300 ms.
    minDeadMs: 300,
    logger: tunnelLog,
    registry,
    ...clockOf(o),
  });
  const t = tunnel;
  stack.push('tunnel', () => t.close());
  return t;
}

/** Step: every VIP's holder, listed and watched (`/vipmesh/assignments/`), for the relay, the API and the master. */
export async function startHolders({ o, log, stack }: ServerStep, kv: Kv): Promise<AssignmentIndex> {
  const holders = new AssignmentIndex({ kv, logger: log.child({ component: 'assignments' }), ...clockOf(o) });
  await holders.start();
  stack.push('assignments', () => holders.close());
  return holders;
}

/**
 * Step: the relay pushing each agent connected here its VIPs, every node's pod-subnet lease, and the
 * Services (with their backends), all of them to every node.
 */
export async function startRelay(
  { o, log, stack, registry }: ServerStep,
  deps: {
    informers: Informers;
    holders: AssignmentIndex;
    kv: Kv;
    tunnel: TunnelServer;
    store: ResourceStore;
  },
): Promise<Relay> {
  const i = deps.informers;
  const backends = new BackendIndex({
    endpoints: i.endpoints,
    endpointslices: i.endpointslices,
    nodes: i.nodes,
  });
  backends.start();
  stack.push('backends', async () => backends.close());
  const services = new ServiceRelay({
    nodes: i.nodes,
    services: i.services,
    backends,
    holders: deps.holders,
    target: deps.tunnel,
    logger: log.child({ component: 'service-relay' }),
  });
  const relay = new Relay({
    services,
    nodes: deps.informers.nodes,
    holders: deps.holders,
    kv: deps.kv,
    target: deps.tunnel,
    clusterCidr: o.clusterCidr,
    logger: log.child({ component: 'relay' }),
    ...clockOf(o),
  });
  await relay.start();
  stack.push('relay', () => relay.close());
  // The endpoint health the agents connected here report, written into their Services' status.
  const health = new EndpointHealthWriter({
    store: deps.store,
    services: i.services,
    holds: (node, key) => services.holds(node, key),
    logger: log.child({ component: 'endpoint-health' }),
    registry,
    host: o.nodeName,
    ...clockOf(o),
  });
  deps.tunnel.onRequest(METHOD_HEALTH, (params, { node }) => health.report(node, params));
  stack.push('endpoint-health', async () => health.close());
  return relay;
}

/**
 * Step: the node lifecycle of the agents connected here (a session registers its Node and marks it
 * Ready, a lost one marks it NotReady, a stopping agent's leave request marks it NotReady and waits for
 * its VIPs to move), wired to the tunnel's session events and the relay.
 */
export function startLifecycle(
  { o, log, stack }: ServerStep,
  deps: {
    store: ResourceStore;
    kv: Kv;
    informers: Informers;
    tunnel: TunnelServer;
    relay: Relay;
    holders: AssignmentIndex;
    /** Where the lifecycle notes its verdicts of lost before their NotReady is written. */
    lost?: LostNodes;
  },
): NodeLifecycle {
  const { tunnel, relay, informers, kv } = deps;
  const lifecycle = new NodeLifecycle({
    store: deps.store,
    server: o.nodeName,
    hasSession: (n) => tunnel.sessions.has(n),
    nodes: () => informers.nodes.items.values(),
    serverAlive: async (name) => (await kv.get(`${SERVERS_PREFIX}${name}`)) !== undefined,
    graceMs: o.nodeGraceMs ?? 5000,
    deleteNotReadyAfterMs: o.nodeGcAfterMs ?? 24 * 3600_000,
    logger: log.child({ controller: 'nodes' }),
    ...clockOf(o),
    ...(deps.lost === undefined ? {} : { verdicts: deps.lost }),
  });
  lifecycle.start();
  stack.push('lifecycle', () => lifecycle.close());
  tunnel.on('session', (session, reg) => {
    void lifecycle.seen(reg.node, (reg.info ?? {}) as NodeRegistration).then(() => {
      if (tunnel.sessions.get(reg.node) === session) relay.sessionUp(reg.node, reg.info);
    });
    // Push what is known at once: the node's assignment does not wait for the registration write.
    relay.sessionUp(reg.node, reg.info);
  });
  tunnel.on('node-lost', ({ node, reason }) => void lifecycle.lost(node, reason));
  const leave = new LeaveHandler({
    markLeaving: (node) => lifecycle.leaving(node),
    holders: deps.holders,
    logger: log.child({ component: 'leave' }),
    ...clockOf(o),
  });
  tunnel.onRequest(METHOD_LEAVE, (params, { node }) => leave.leave(node, params));
  // A second machine with a node's identity is refused by the tunnel; say so on the Node (at most once a
  // minute per node: the refused agent retries every few seconds).
  const conflictEventAt = new Map<string, number>();
  const clock = o.clock;
  tunnel.on('conflict', ({ node, remote, reason }) => {
    const t = (clock ?? systemClock).now();
    const last = conflictEventAt.get(node);
    if (last !== undefined && t - last < 60_000) return;
    conflictEventAt.set(node, t);
    const involved = informers.nodes.items.get(node);
    if (involved === undefined) return;
    void recordEvent(
      deps.store,
      {
        involved,
        reason: 'NodeIdentityConflict',
        message: `refused a tunnel connection from ${remote ?? 'an unknown address'}: ${reason}`,
        type: 'Warning',
        component: 'vipmesh-server',
        host: o.nodeName,
        now: t,
      },
      log,
    );
  });
  return lifecycle;
}
