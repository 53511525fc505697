import { status } from '@grpc/grpc-js';

/**
 * An error that crosses the gRPC edge with the status code and message etcd sends for the same case
 * (go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes), so etcd clients map it to their own error types.
 * Internal code throws these; the server handlers turn them into gRPC statuses unchanged.
 */
export class EtcdError extends Error {
  /** The gRPC status code (`status.OUT_OF_RANGE`, ...). */
  readonly grpcCode: status;

  constructor(grpcCode: status, message: string) {
    super(message);
    this.name = 'EtcdError';
    this.grpcCode = grpcCode;
  }
}

const mk = (code: status, message: string) => () => new EtcdError(code, message);

/** The etcd errors the datastore can answer with, by their rpctypes names. */
export const etcdErrors = {
  emptyKey: mk(status.INVALID_ARGUMENT, 'etcdserver: key is not provided'),
  keyNotFound: mk(status.INVALID_ARGUMENT, 'etcdserver: key not found'),
  valueProvided: mk(status.INVALID_ARGUMENT, 'etcdserver: value is provided'),
  leaseProvided: mk(status.INVALID_ARGUMENT, 'etcdserver: lease is provided'),
  tooManyOps: mk(status.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request'),
  duplicateKey: mk(status.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request'),
  invalidSortOption: mk(status.INVALID_ARGUMENT, 'etcdserver: invalid sort option'),
  requestTooLarge: mk(status.INVALID_ARGUMENT, 'etcdserver: request is too large'),
  compacted: mk(status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'),
  futureRev: mk(status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'),
  leaseNotFound: mk(status.NOT_FOUND, 'etcdserver: requested lease not found'),
  leaseExist: mk(status.FAILED_PRECONDITION, 'etcdserver: lease already exists'),
  leaseTTLTooLarge: mk(status.OUT_OF_RANGE, 'etcdserver: too large lease TTL'),
  stopped: mk(status.UNAVAILABLE, 'etcdserver: server stopped'),
  authNotEnabled: mk(status.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled'),
  memberNotFound: mk(status.NOT_FOUND, 'etcdserver: member not found'),
  memberNotLearner: mk(status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member'),
  notEnoughStartedMembers: mk(
    status.FAILED_PRECONDITION,
    'etcdserver: re-configuration failed due to not enough started members',
  ),
  badLeaderTransferee: mk(status.FAILED_PRECONDITION, 'etcdserver: bad leader transferee'),
};
