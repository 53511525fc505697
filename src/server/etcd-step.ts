/**
 * Step: the embedded etcd member of a server started with `--cluster-init`, joined with `--server`, or
 * restarted with a member in its data dir. The member's certificate is issued from the cluster CA at each
 * start (so a changed node IP is picked up); the server becomes ready only once the member is healthy.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { systemClock } from '../clock.js';
import { VipmeshError } from '../errors.js';
import { EtcdMember, etcdPaths, type MemberConfig, memberExists, peerUrlOf } from '../etcd-member/index.js';
import { restrictDir } from '../kine/index.js';
import { ensureServerCredentials, issueCertificate } from '../pki/index.js';
import { joinWithRetry } from './etcd-join.js';
import { clockOf, type ServerStep, servingSans } from './server-options.js';

/** The running member as the datastore step hands it on. */
export interface EmbeddedEtcd {
  member: EtcdMember;
  endpoints: string;
  /** PEMs for the etcd client (the member's own certificate doubles as the client's). */
  tls: { ca: Buffer; cert: Buffer; key: Buffer };
}

/** How long a member may take to become healthy (a joiner catches up with the others first) [60 s]. */
const HEALTHY_WITHIN_MS = 60_000;

/**
 * True when the server runs an embedded etcd member: asked for, or one exists in the data dir.
 * `--cluster-reset` alone does not ask for one: on the SQLite datastore it has nothing to reset.
 */
export function wantsEmbeddedEtcd(o: ServerStep['o']): boolean {
  return o.clusterInit === true || o.join !== undefined || memberExists(o.dataDir);
}

/** The address peers reach this node on: the first `--node-ip` (IPv4 first), else the first global IPv4. */
export function peerIpOf(nodeIps: string[] | undefined): string {
  const given = nodeIps ?? [];
  const v4 = given.find((ip) => !ip.includes(':'));
  if (v4 !== undefined) return v4;
  if (given[0] !== undefined) return given[0];
  for (const addrs of Object.values(networkInterfaces())) {
    const a = addrs?.find((x) => x.family === 'IPv4' && !x.internal);
    if (a !== undefined) return a.address;
  }
  throw new VipmeshError(
    'VIPMESH_CLUSTER_NO_NODE_IP',
    'the etcd member needs a peer address: give --node-ip (the host has no non-loopback IPv4 address)',
  );
}

function writePrivate(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, text, { mode: 0o600 });
}

/** Step: start (or join, or restart) the member and wait until it is healthy. */
export async function startEmbeddedEtcd({ o, log, stack }: ServerStep): Promise<EmbeddedEtcd> {
  const paths = etcdPaths(o.dataDir);
  restrictDir(join(o.dataDir, 'server', 'db'), log);
  const peerIp = peerIpOf(o.nodeIps);
  const name = o.nodeName;
  const self = `${name}=${peerUrlOf({ peerIp })}`;
  const existing = memberExists(o.dataDir);
  let config: MemberConfig = {
    name,
    paths,
    peerIp,
    initialCluster: self,
    initialClusterState: 'new',
    ...(o.clusterReset === true ? { forceNewCluster: true } : {}),
  };
  if (!existing && o.join !== undefined) {
    const clock = o.clock ?? systemClock;
    const answer = await joinWithRetry(
      o.join.server,
      o.join.token,
      { name, peerUrl: peerUrlOf({ peerIp }) },
      {
        timeoutMs: HEALTHY_WITHIN_MS,
        now: () => clock.now(),
        sleep: (ms) => new Promise((r) => clock.setTimeout(r, ms)),
        logger: log,
      },
    );
    const tls = join(o.dataDir, 'server', 'tls');
    writePrivate(join(tls, 'server-ca.crt'), answer.caCertPem);
    writePrivate(join(tls, 'server-ca.key'), answer.caKeyPem);
    config = { ...config, initialCluster: answer.initialCluster, initialClusterState: 'existing' };
    log.info({ initialCluster: answer.initialCluster }, 'added as an etcd member; starting it');
  } else if (existing && o.join !== undefined) {
    log.info('this server joined before: restarting its etcd member');
  }
  const creds = await ensureServerCredentials(o.dataDir, { sans: servingSans(o) });
  const leaf = await issueCertificate(creds, {
    cn: `etcd-${name}`,
    sans: ['localhost', '127.0.0.1', '::1', peerIp, name],
    client: true,
  });
  writePrivate(paths.caFile, creds.caCertPem);
  writePrivate(paths.certFile, leaf.certPem);
  writePrivate(paths.keyFile, leaf.keyPem);
  const member = new EtcdMember({
    config,
    ...(o.etcdBinary === undefined ? {} : { binary: o.etcdBinary }),
    logger: o.logger.child({ module: 'etcd' }),
    ...clockOf(o),
  });
  member.start();
  stack.push('etcd-member', () => member.close());
  await member.waitHealthy(HEALTHY_WITHIN_MS);
  log.info({ member: name, clientUrl: member.clientUrl }, 'etcd member healthy');
  return {
    member,
    endpoints: member.clientUrl,
    tls: {
      ca: readFileSync(paths.caFile),
      cert: readFileSync(paths.certFile),
      key: readFileSync(paths.keyFile),
    },
  };
}
