/**
 * Where an embedded etcd member keeps its state and how it is started: the paths under the data dir, the
 * command line of the Debian `etcd` binary (v3.4), and what a local client needs to reach the member.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { joinHostPort } from '../util/host-port.js';

/** Client port of the member, on loopback only (etcd's usual 2379). */
export const ETCD_CLIENT_PORT = 2379;
/** Peer port of the member, on the node IP (etcd's usual 2380). */
export const ETCD_PEER_PORT = 2380;
/**
 * gRPC channel options for a client of the local member: the TLS name checked is `localhost` (in every
 * member certificate), since Node refuses an IP address as the TLS server name (DEP0123).
 */
export const LOCAL_GRPC_OPTIONS = { 'grpc.ssl_target_name_override': 'localhost' } as const;

/** The etcd binary of Debian's etcd-server package. */
export const DEFAULT_ETCD_BINARY = '/usr/bin/etcd';

/** The member's files under a vipmesh data dir. */
export interface EtcdPaths {
  /** etcd's `--data-dir`: `<data-dir>/server/db/etcd`. */
  dataDir: string;
  /** The cluster CA that signs every member's certificate (peer, server and client). */
  caFile: string;
  /** This member's certificate (serverAuth and clientAuth), also what the local vipmesh client presents. */
  certFile: string;
  keyFile: string;
}

/** The paths of the embedded etcd member of the vipmesh data dir `dataDir`. */
export function etcdPaths(dataDir: string): EtcdPaths {
  const tls = join(dataDir, 'server', 'tls', 'etcd');
  return {
    dataDir: join(dataDir, 'server', 'db', 'etcd'),
    caFile: join(tls, 'ca.crt'),
    certFile: join(tls, 'member.crt'),
    keyFile: join(tls, 'member.key'),
  };
}

/** What a client of the local member needs (etcdctl: `--endpoints --cacert --cert --key`). */
export interface LocalEtcdClient {
  /** `https://127.0.0.1:2379`. */
  endpoints: string[];
  caFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * The client endpoints and TLS files of the embedded etcd member of `dataDir`, or undefined when this data
 * dir holds no member (a server on SQLite or on an external etcd). For `vipmesh snapshot` and the like: the
 * files are readable by root only.
 */
export function localEtcdClient(dataDir: string): LocalEtcdClient | undefined {
  const p = etcdPaths(dataDir);
  if (!existsSync(join(p.dataDir, 'member')) || !existsSync(p.certFile)) return undefined;
  return {
    endpoints: [`https://${joinHostPort('127.0.0.1', ETCD_CLIENT_PORT)}`],
    caFile: p.caFile,
    certFile: p.certFile,
    keyFile: p.keyFile,
  };
}

/** True when `dataDir`'s member has state already (a restart, not a first start). */
export function memberExists(dataDir: string): boolean {
  return existsSync(join(etcdPaths(dataDir).dataDir, 'member'));
}

/** How to run one member. */
export interface MemberConfig {
  /** Member name: the vipmesh node name. */
  name: string;
  paths: EtcdPaths;
  /** The node IP peers reach this member on. */
  peerIp: string;
  /** [2379] */
  clientPort?: number;
  /** [2380] */
  peerPort?: number;
  /** `name=https://ip:2380,...`; only read by etcd on a member's first start. */
  initialCluster: string;
  /** `new` for `--cluster-init`, `existing` for a join. */
  initialClusterState: 'new' | 'existing';
  /** Start as a one-member cluster from this member's data (`--cluster-reset`). */
  forceNewCluster?: boolean;
}

/** This member's peer URL. */
export function peerUrlOf(c: Pick<MemberConfig, 'peerIp' | 'peerPort'>): string {
  return `https://${joinHostPort(c.peerIp, c.peerPort ?? ETCD_PEER_PORT)}`;
}

/** This member's client URL (loopback). */
export function clientUrlOf(c: Pick<MemberConfig, 'clientPort'>): string {
  return `https://${joinHostPort('127.0.0.1', c.clientPort ?? ETCD_CLIENT_PORT)}`;
}

/**
 * etcd's command line for `c`: TLS with client certificates on both the client URL (loopback) and the peer
 * URL (the node IP), both checked against the cluster CA; JSON logs on stderr for the supervisor to pass on.
 */
export function etcdArgs(c: MemberConfig): string[] {
  const peer = peerUrlOf(c);
  const client = clientUrlOf(c);
  const { paths: p } = c;
  const args = [
    `--name=${c.name}`,
    `--data-dir=${p.dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${c.initialCluster}`,
    `--initial-cluster-state=${c.initialClusterState}`,
    '--client-cert-auth',
    `--trusted-ca-file=${p.caFile}`,
    `--cert-file=${p.certFile}`,
    `--key-file=${p.keyFile}`,
    '--peer-client-cert-auth',
    `--peer-trusted-ca-file=${p.caFile}`,
    `--peer-cert-file=${p.certFile}`,
    `--peer-key-file=${p.keyFile}`,
    '--logger=zap',
    '--log-outputs=stderr',
    // The listen-metrics default is off; the v2 API is not used by anything of vipmesh.
    '--enable-v2=false',
  ];
  if (c.forceNewCluster === true) args.push('--force-new-cluster');
  return args;
}
