/**
 * Membership of the embedded etcd cluster as an operator sees it: list the members, remove one by name
 * (the vipmesh node name it was started with). Through the local member's client URL and certificate.
 */
import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { VipmeshError } from '../errors.js';
import { LOCAL_GRPC_OPTIONS, type LocalEtcdClient, localEtcdClient } from './config.js';

/** One member as `vipmesh etcd member list` prints it. */
export interface MemberInfo {
  /** Hex id. */
  id: string;
  /** Empty until the member has started once. */
  name: string;
  peerUrls: string[];
  started: boolean;
}

/** An etcd client of the local member of `dataDir`; `VIPMESH_ETCD_MEMBER` when there is none. */
export function localClient(dataDir: string): Etcd3 {
  const c: LocalEtcdClient | undefined = localEtcdClient(dataDir);
  if (c === undefined) {
    throw new VipmeshError(
      'VIPMESH_ETCD_MEMBER',
      `${dataDir} holds no embedded etcd member (start the server with --cluster-init or --server first)`,
      { details: { dataDir } },
    );
  }
  return new Etcd3({
    hosts: c.endpoints,
    credentials: {
      rootCertificate: readFileSync(c.caFile),
      certChain: readFileSync(c.certFile),
      privateKey: readFileSync(c.keyFile),
    },
    dialTimeout: 3000,
    grpcOptions: { ...LOCAL_GRPC_OPTIONS },
  });
}

/** Wrap an etcd refusal; etcd's words without a quorum become a sentence that says so. */
function refused(what: string, err: unknown): VipmeshError {
  const msg = (err as Error).message;
  const noQuorum = /request timed out|no leader|unhealthy cluster|deadline/i.test(msg);
  return new VipmeshError(
    'VIPMESH_ETCD_MEMBER',
    noQuorum
      ? `${what}: etcd has lost quorum (fewer than half of its members reachable): ${msg}; bring members back, or run \`vipmesh server --cluster-reset\` on the survivor`
      : `${what}: ${msg}`,
    { cause: err },
  );
}

/** The members of the cluster. */
export async function listMembers(etcd: Etcd3): Promise<MemberInfo[]> {
  try {
    const res = await etcd.cluster.memberList({ linearizable: true });
    return res.members.map((m) => ({
      id: BigInt(m.ID).toString(16),
      name: m.name,
      peerUrls: m.peerURLs,
      started: m.name !== '' && m.clientURLs.length > 0,
    }));
  } catch (err) {
    throw refused('cannot list the etcd members', err);
  }
}

/**
 * Remove the member named `name` (or with that hex id: a member that never started has no name);
 * `VIPMESH_ETCD_MEMBER` when there is none, or etcd refuses.
 */
export async function removeMember(etcd: Etcd3, name: string): Promise<MemberInfo> {
  const members = await listMembers(etcd);
  const m = members.find((x) => x.name === name) ?? members.find((x) => x.id === name);
  if (m === undefined) {
    throw new VipmeshError(
      'VIPMESH_ETCD_MEMBER',
      `no etcd member named ${name} (members: ${members.map((x) => x.name || x.id).join(', ')})`,
      { details: { name } },
    );
  }
  try {
    await etcd.cluster.memberRemove({ ID: BigInt(`0x${m.id}`).toString() });
  } catch (err) {
    throw refused(`cannot remove etcd member ${name}`, err);
  }
  return m;
}
