import type { DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest } from '../kine/types.js';

/**
 * Request builders with etcd's defaults filled in, as @grpc/proto-loader would decode them. Used by the tests
 * and by embedding code that calls the backend without gRPC.
 */
export const req = {
  range(key: string | Buffer, opts: Partial<RangeRequest> & { end?: string | Buffer } = {}): RangeRequest {
    const { end, ...rest } = opts;
    return {
      key: Buffer.from(key),
      range_end: end === undefined ? Buffer.alloc(0) : Buffer.from(end),
      limit: 0,
      revision: 0,
      sort_order: 0,
      sort_target: 0,
      serializable: false,
      keys_only: false,
      count_only: false,
      min_mod_revision: 0,
      max_mod_revision: 0,
      min_create_revision: 0,
      max_create_revision: 0,
      ...rest,
    };
  },
  put(key: string | Buffer, value: string | Buffer, opts: Partial<PutRequest> = {}): PutRequest {
    return {
      key: Buffer.from(key),
      value: Buffer.from(value),
      lease: 0,
      prev_kv: false,
      ignore_value: false,
      ignore_lease: false,
      ...opts,
    };
  },
  del(key: string | Buffer, opts: { end?: string | Buffer; prevKv?: boolean } = {}): DeleteRangeRequest {
    return {
      key: Buffer.from(key),
      range_end: opts.end === undefined ? Buffer.alloc(0) : Buffer.from(opts.end),
      prev_kv: opts.prevKv ?? false,
    };
  },
  txn(t: Partial<TxnRequest>): TxnRequest {
    return { compare: [], success: [], failure: [], ...t };
  },
};
