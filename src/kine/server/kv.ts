import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Backend } from '../backend.js';
import { etcdErrors } from '../errors.js';
import { Mvcc } from '../mvcc.js';
import type {
  DeleteRangeRequest,
  DeleteRangeResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  ResponseHeader,
  ResponseOp,
  TxnRequest,
  TxnResponse,
} from '../types.js';
import { unary } from './common.js';

/**
 * The KV service. The verbs are thin: validation that etcd does before proposing (checkPutRequest, ...)
 * runs before the write is queued, the rest lives in {@link Mvcc}.
 */
export function kvService(b: Backend, log: Logger): UntypedServiceImplementation {
  return {
    Range: unary<RangeRequest, RangeResponse>(log, 'Range', (req) => {
      const res = b.mvcc.range(req);
      return { header: b.header(), ...res };
    }),
    Put: unary<PutRequest, PutResponse>(log, 'Put', async (req) => {
      Mvcc.checkPut(req);
      const { value, rev } = await b.write((tx) => b.mvcc.put(tx, req));
      return { header: b.header(rev), ...value };
    }),
    DeleteRange: unary<DeleteRangeRequest, DeleteRangeResponse>(log, 'DeleteRange', async (req) => {
      if (req.key.length === 0) throw etcdErrors.emptyKey();
      const { value, rev } = await b.write((tx) => b.mvcc.deleteRange(tx, req));
      return { header: b.header(rev), ...value };
    }),
    Txn: unary<TxnRequest, TxnResponse>(log, 'Txn', async (req) => {
      Mvcc.checkTxn(req);
      const { value, rev } = await b.write((tx) => b.mvcc.txn(tx, req));
      fillHeaders(value.responses, b, rev);
      return { header: b.header(rev), ...value };
    }),
    Compact: unary<{ revision: string; physical: boolean }, { header: unknown }>(
      log,
      'Compact',
      async (req) => {
        const rev = await b.compactor.compact(Number(req.revision), req.physical);
        return { header: b.header(rev) };
      },
    ),
  };
}

function fillHeaders(responses: ResponseOp[], b: Backend, rev: number): void {
  for (const r of responses) {
    const inner = r.response_range ?? r.response_put ?? r.response_delete_range ?? r.response_txn;
    // etcd fills only the revision in the headers of a txn's inner responses.
    if (inner !== undefined) inner.header = { revision: rev } as ResponseHeader;
    if (r.response_txn) fillHeaders(r.response_txn.responses, b, rev);
  }
}
