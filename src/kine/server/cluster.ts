import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { etcdErrors } from '../errors.js';
import type { EtcdBackend } from '../etcd-backend.js';
import type { Int64 } from '../types.js';
import { unary } from './common.js';

/** What the Cluster service reports about the one member. */
export interface MemberInfo {
  name: string;
  clientUrls: () => string[];
}

/**
 * Cluster for a one-member cluster, answering as a one-member etcd does: MemberList lists this member (its
 * header, like etcd's, carries no revision); MemberUpdate of this member records its peer URLs; removing
 * this member is refused for want of started members; any other member ID is "member not found".
 * MemberAdd stays unimplemented: etcd would accept the member and then wait, without quorum, for it to start.
 */
export function clusterService(
  b: EtcdBackend,
  log: Logger,
  member: MemberInfo,
): UntypedServiceImplementation {
  const members = () => [
    {
      ID: b.memberId,
      name: member.name,
      peerURLs: b.peerUrls(),
      clientURLs: member.clientUrls(),
      isLearner: false,
    },
  ];
  const self = (id: Int64) => {
    if (String(id) !== b.memberId) throw etcdErrors.memberNotFound();
  };
  return {
    MemberList: unary<object, object>(log, 'MemberList', () => ({ header: b.header(0), members: members() })),
    MemberRemove: unary<{ ID: Int64 }, object>(log, 'MemberRemove', (req) => {
      self(req.ID);
      throw etcdErrors.notEnoughStartedMembers();
    }),
    MemberUpdate: unary<{ ID: Int64; peerURLs: string[] }, object>(log, 'MemberUpdate', (req) => {
      self(req.ID);
      b.setPeerUrls(req.peerURLs);
      return { header: b.header(0), members: members() };
    }),
    MemberPromote: unary<{ ID: Int64 }, object>(log, 'MemberPromote', (req) => {
      self(req.ID);
      throw etcdErrors.memberNotLearner();
    }),
  };
}

/** Maintenance.MoveLeader: moving the leadership to this member (already the leader) succeeds; else refused. */
export function moveLeader(b: EtcdBackend, log: Logger) {
  return unary<{ targetID: Int64 }, object>(log, 'MoveLeader', (req) => {
    if (String(req.targetID) !== b.memberId) throw etcdErrors.badLeaderTransferee();
    return { header: b.header() };
  });
}
