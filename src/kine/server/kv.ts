import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { EtcdBackend } from '../etcd-backend.js';
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
 * The KV service. The verbs are thin: the backend checks a request as etcd does before proposing it
 * (checkPutRequest, ...) before the write is queued, and runs it as one durable write.
 */
export function kvService(b: EtcdBackend, log: Logger): UntypedServiceImplementation {
  return {
    Range: unary<RangeRequest, RangeResponse>(log, 'Range', (req) => {
      const res = b.range(req);
      return { header: b.header(), ...res };
    }),
    Put: unary<PutRequest, PutResponse>(log, 'Put', async (req) => {
      const { value, rev } = await b.put(req);
      return { header: b.header(rev), ...value };
    }),
    DeleteRange: unary<DeleteRangeRequest, DeleteRangeResponse>(log, 'DeleteRange', async (req) => {
      const { value, rev } = await b.deleteRange(req);
      return { header: b.header(rev), ...value };
    }),
    Txn: unary<TxnRequest, TxnResponse>(log, 'Txn', async (req) => {
      const { value, rev } = await b.txn(req);
      fillHeaders(value.responses, rev);
      return { header: b.header(rev), ...value };
    }),
    Compact: unary<{ revision: string; physical: boolean }, { header: unknown }>(
      log,
      'Compact',
      async (req) => {
        const rev = await b.compact(Number(req.revision), req.physical);
        return { header: b.header(rev) };
      },
    ),
  };
}

function fillHeaders(responses: ResponseOp[], rev: number): void {
  for (const r of responses) {
    const inner = r.response_range ?? r.response_put ?? r.response_delete_range ?? r.response_txn;
    // etcd fills only the revision in the headers of a txn's inner responses.
    if (inner !== undefined) inner.header = { revision: rev } as ResponseHeader;
    if (r.response_txn) fillHeaders(r.response_txn.responses, rev);
  }
}
