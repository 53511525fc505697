import type { DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest } from './types.js';

/** A Buffer as it is (no copy), or a string's bytes. */
const bytes = (b: string | Buffer): Buffer => (typeof b === 'string' ? Buffer.from(b) : b);

/**
 * Request builders with etcd's defaults filled in, as @grpc/proto-loader would decode them: for code that
 * calls the backend without gRPC (the server's in-process Kv) and for the tests. Buffers are taken as they
 * are, not copied.
 */
export const req = {
  range(key: string | Buffer, opts: Partial<RangeRequest> & { end?: string | Buffer } = {}): RangeRequest {
    const { end, ...rest } = opts;
    return {
      key: bytes(key),
      range_end: end === undefined ? Buffer.alloc(0) : bytes(end),
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
      key: bytes(key),
      value: bytes(value),
      lease: 0,
      prev_kv: false,
      ignore_value: false,
      ignore_lease: false,
      ...opts,
    };
  },
  del(key: string | Buffer, opts: { end?: string | Buffer; prevKv?: boolean } = {}): DeleteRangeRequest {
    return {
      key: bytes(key),
      range_end: opts.end === undefined ? Buffer.alloc(0) : bytes(opts.end),
      prev_kv: opts.prevKv ?? false,
    };
  },
  txn(t: Partial<TxnRequest>): TxnRequest {
    return { compare: [], success: [], failure: [], ...t };
  },
};
