import { DEFAULT_LIST_PAGE_SIZE, listInPages, pair, prefixEnd, unavailable } from '../api/etcd-kv.js';
import type {
  Kv,
  KvGuard,
  KvOp,
  KvPage,
  KvPageOptions,
  KvPair,
  KvWatch,
  KvWatchHandlers,
  KvWriteResult,
} from '../api/kv.js';
import { apiError } from '../api/status.js';
import { etcdErrors } from '../kine/errors.js';
import type { EtcdBackend } from '../kine/etcd-backend.js';
import { req } from '../kine/requests.js';
import { MAX_REQUEST_BYTES } from '../kine/server/common.js';
import {
  CompareResult,
  CompareTarget,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type TxnRequest,
} from '../kine/types.js';

/**
 * The server's {@link Kv} on the datastore it embeds: reads and writes call the datastore's backend in this
 * process, the same request checks and the same durable write a gRPC call gets, without encoding, HTTP/2
 * and decoding on both ends of a unix socket. Watches go through `watches` (the etcd client on that
 * socket): a watch's catch-up from history, progress and slow-watcher limits live in the gRPC Watch
 * service. A write's event therefore reaches a watcher the same way as before.
 */
export class EmbeddedKv implements Kv {
  readonly #b: EtcdBackend;
  readonly #watches: Kv;

  constructor(backend: EtcdBackend, watches: Kv) {
    this.#b = backend;
    this.#watches = watches;
  }

  async get(key: string): Promise<KvPair | undefined> {
    const kv = this.#range(req.range(key)).kvs[0];
    return kv === undefined ? undefined : pair(kv);
  }

  /**
   * Every key under `prefix`, in pages at one revision as over gRPC, with a turn of the event loop between
   * pages: a range is synchronous here, and 50,000 keys read at once would hold the loop for a second.
   */
  list(prefix: string): Promise<{ pairs: KvPair[]; revision: number }> {
    return listInPages(this, prefix, DEFAULT_LIST_PAGE_SIZE);
  }

  async listPage(prefix: string, opts: KvPageOptions): Promise<KvPage> {
    // A later page of a long list: let other work run between pages, as the round trips over gRPC did.
    if (opts.start !== undefined) await new Promise<void>((resolve) => setImmediate(resolve));
    const current = this.#b.revision;
    const res = this.#range(
      req.range(opts.start ?? prefix, {
        end: prefixEnd(prefix),
        limit: Math.max(0, Math.floor(opts.limit)),
        ...(opts.revision === undefined ? {} : { revision: opts.revision }),
      }),
      opts.revision,
    );
    return {
      pairs: res.kvs.map(pair),
      revision: opts.revision ?? current,
      more: res.more,
    };
  }

  put(key: string, value: Buffer, expect: number, guard?: KvGuard): Promise<KvWriteResult> {
    return this.#txn(key, expect, { request_put: req.put(key, value) }, guard);
  }

  delete(key: string, expect: number): Promise<KvWriteResult> {
    return this.#txn(key, expect, { request_delete_range: req.del(key) });
  }

  async batch(ops: readonly KvOp[]): Promise<number> {
    const success: RequestOp[] = ops.map((op) =>
      op.value === undefined
        ? { request_delete_range: req.del(op.key) }
        : { request_put: req.put(op.key, op.value) },
    );
    const { rev } = await this.#write(req.txn({ success }));
    return rev;
  }

  watch(prefix: string, from: number, handlers: KvWatchHandlers): Promise<KvWatch> {
    return this.#watches.watch(prefix, from, handlers);
  }

  async revision(): Promise<number> {
    return this.#b.revision;
  }

  close(): Promise<void> {
    return this.#watches.close();
  }

  /** A range; a compacted `revision` is VIPMESH_API_GONE, any other failure 503. */
  #range(r: RangeRequest, revision?: number): RangeResponse {
    try {
      return this.#b.range(r);
    } catch (err) {
      if (revision !== undefined && /compact/i.test((err as Error).message)) {
        throw apiError('VIPMESH_API_GONE', `revision ${revision} has been compacted`, {}, err);
      }
      return unavailable(err);
    }
  }

  /** The write `EtcdKv` makes: compare the key's mod revision (and the guard's), else read the key. */
  async #txn(key: string, expect: number, op: RequestOp, guard?: KvGuard): Promise<KvWriteResult> {
    const k = Buffer.from(key);
    const compare = [modEquals(k, expect)];
    const success: RequestOp[] = [op];
    if (guard !== undefined) {
      const g = Buffer.from(guard.key);
      compare.push(modEquals(g, guard.expect));
      success.push({ request_put: req.put(g, k) });
    }
    const { value, rev } = await this.#write({
      compare,
      success,
      failure: [{ request_range: req.range(k) }],
    });
    if (value.succeeded) return { ok: true, revision: rev };
    const kv = value.responses[0]?.response_range?.kvs[0];
    return { ok: false, current: kv === undefined ? undefined : pair(kv) };
  }

  /** One durable Txn, refused above etcd's request limit as the gRPC service refuses it; failures are 503. */
  async #write(txn: TxnRequest) {
    try {
      if (txnBytes(txn) > MAX_REQUEST_BYTES) throw etcdErrors.requestTooLarge();
      return await this.#b.txn(txn);
    } catch (err) {
      return unavailable(err);
    }
  }
}

function modEquals(key: Buffer, modRevision: number) {
  return {
    key,
    target: CompareTarget.MOD,
    result: CompareResult.EQUAL,
    mod_revision: modRevision,
    range_end: Buffer.alloc(0),
  };
}

/** About what the Txn weighs encoded: its keys and values (the framing is a few bytes per op). */
function txnBytes(txn: TxnRequest): number {
  let n = 0;
  for (const c of txn.compare) n += c.key.length + 16;
  for (const op of txn.success) {
    const w = op.request_put ?? op.request_delete_range ?? op.request_range;
    n += (w?.key.length ?? 0) + (op.request_put?.value.length ?? 0) + 16;
  }
  return n;
}
