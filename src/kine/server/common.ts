import { type handleUnaryCall, type ServerUnaryCall, status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { EtcdError, etcdErrors } from '../errors.js';

/** etcd's default --max-request-bytes: 1.5 MiB. */
export const MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
/** etcd lets gRPC receive this much more than a request may carry (embed/serve.go grpcOverheadBytes). */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

/** Requests whose encoded size exceeds {@link MAX_REQUEST_BYTES} (marked while decoding). */
export const oversized = new WeakSet<object>();

/** A gRPC status for `err`: etcd errors keep their code and message; anything else is INTERNAL. */
export function toStatus(err: unknown, log: Logger, rpc: string): { code: status; details: string } {
  if (err instanceof EtcdError) return { code: err.grpcCode, details: err.message };
  log.error({ err, rpc }, 'request failed');
  return { code: status.INTERNAL, details: `etcdserver: ${(err as Error)?.message ?? String(err)}` };
}

/** A unary handler around `fn` (sync or async), mapping thrown errors to gRPC statuses. */
export function unary<Req, Res>(
  log: Logger,
  rpc: string,
  fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let result: Res | Promise<Res>;
    try {
      if (oversized.has(call.request as object)) throw etcdErrors.requestTooLarge();
      result = fn(call.request, call);
    } catch (err) {
      callback(toStatus(err, log, rpc));
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (res) => callback(null, res),
        (err: unknown) => callback(toStatus(err, log, rpc)),
      );
    } else {
      callback(null, result);
    }
  };
}
