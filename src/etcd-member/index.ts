/**
 * The embedded etcd member a server runs with `--cluster-init` or a join: its paths and command line,
 * the supervisor, and what a local client needs to reach it.
 */
export {
  clientUrlOf,
  DEFAULT_ETCD_BINARY,
  ETCD_CLIENT_PORT,
  ETCD_PEER_PORT,
  type EtcdPaths,
  etcdArgs,
  etcdPaths,
  LOCAL_GRPC_OPTIONS,
  type LocalEtcdClient,
  localEtcdClient,
  type MemberConfig,
  memberExists,
  peerUrlOf,
} from './config.js';
export { defaultSpawn, EtcdMember, type EtcdMemberOptions, type Spawn } from './member.js';
export { listMembers, localClient, type MemberInfo, removeMember } from './members.js';
