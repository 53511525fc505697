import { status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { EtcdBackend } from '../etcd-backend.js';
import type { Int64 } from '../types.js';
import { moveLeader } from './cluster.js';
import { unary } from './common.js';
import { snapshot } from './snapshot.js';

/** The version Status reports: the etcd API level this datastore implements. */
const API_VERSION = '3.4.0';

/** Maintenance (Status, Alarm, Defragment) and Cluster (MemberList) for the single member. */
export function maintenanceService(b: EtcdBackend, log: Logger): UntypedServiceImplementation {
  return {
    Status: unary<object, object>(log, 'Status', () => {
      const size = b.size();
      return {
        header: b.header(),
        version: API_VERSION,
        dbSize: size.total,
        dbSizeInUse: size.inUse,
        leader: b.memberId,
        raftIndex: b.revision,
        raftTerm: 2,
        raftAppliedIndex: b.revision,
        errors: [],
        isLearner: false,
      };
    }),
    // No alarm can be raised here (no space quota, no corruption check across members): always empty.
    Alarm: unary<object, object>(log, 'Alarm', () => ({ header: b.header(), alarms: [] })),
    Defragment: unary<object, object>(log, 'Defragment', () => {
      b.defragment();
      return { header: b.header() };
    }),
    MoveLeader: moveLeader(b, log),
    Snapshot: snapshot(b, log),
    HashKV: unary<{ revision: Int64 }, object>(log, 'HashKV', (req) => {
      const { hash, rev, compactRev } = b.hashKv(Number(req.revision));
      return { header: b.header(rev), hash, compact_revision: compactRev };
    }),
  };
}

/** The status for an RPC this datastore does not serve, naming it. */
export function unimplemented(rpc: string): { code: status; details: string } {
  return { code: status.UNIMPLEMENTED, details: `vipmesh datastore: ${rpc} is not implemented` };
}
