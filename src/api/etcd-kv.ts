import {
  Etcd3,
  GRPCDeadlineExceededError,
  GRPCResourceExhastedError,
  type IKeyValue,
  type IOptions,
  isRecoverableError,
  type Watcher,
} from 'etcd3';
import { VipmeshError } from '../errors.js';
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
} from './kv.js';
import { apiError } from './status.js';

/** Keys per datastore read when listing a prefix (kube-apiserver's informers use the same page size). */
export const DEFAULT_LIST_PAGE_SIZE = 500;

/**
 * The largest datastore answer the client accepts (gRPC's default is 4 MiB). Lists are paged, and a page
 * that is still too large is read again in halves, so this is only a second line of defence.
 */
export const DEFAULT_MAX_RECEIVE_BYTES = 16 << 20;

/** Tuning of the datastore client; the defaults suit production, tests lower them. */
export interface EtcdTuning {
  /** Keys per read when listing [{@link DEFAULT_LIST_PAGE_SIZE}]. */
  pageSize?: number;
  /** Largest gRPC message received [{@link DEFAULT_MAX_RECEIVE_BYTES}]. */
  maxReceiveBytes?: number;
}

/** Options for {@link createEtcdKv}. */
export interface EtcdKvOptions extends EtcdTuning {
  /** `http://127.0.0.1:2379` or several, comma-separated (`--datastore-endpoint`). */
  endpoints: string | string[];
  /** Extra `etcd3` client options (credentials, TLS). */
  client?: Omit<IOptions, 'hosts'>;
}

/** Connect to etcd (or the embedded datastore) at `endpoints`. No I/O until the first call. */
export function createEtcdKv(opts: EtcdKvOptions): EtcdKv {
  const hosts = (Array.isArray(opts.endpoints) ? opts.endpoints : opts.endpoints.split(','))
    .map((h) => h.trim())
    .filter((h) => h !== '');
  return new EtcdKv(
    new Etcd3({ ...etcdClientOptions(opts), ...opts.client, hosts }),
    opts.pageSize === undefined ? {} : { pageSize: opts.pageSize },
  );
}

type FaultPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

/**
 * A fault policy for the `etcd3` client: run the call, and try again (on the next host) up to `attempts`
 * times while `retry(err)` says so. No circuit breaker: the client's default opens one for 5 s after three
 * failures in a row, so one oversized answer (three attempts) made every unrelated call fail with it.
 */
function retryPolicy(attempts: number, retry: (err: Error) => boolean): FaultPolicy {
  const never = () => ({ dispose: () => undefined });
  const policy = {
    onSuccess: never,
    onFailure: never,
    async execute<T>(
      fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T,
      signal?: AbortSignal,
    ): Promise<T> {
      const context = { signal: signal ?? new AbortController().signal };
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn(context);
        } catch (err) {
          if (attempt >= attempts || !(err instanceof Error) || !retry(err)) throw err;
        }
      }
    },
  };
  return policy as Omit<FaultPolicy, '_altReturn'> as FaultPolicy;
}

/**
 * The `etcd3` client options every vipmesh datastore client uses: a larger receive limit, and fault handling
 * where one failed call never fails the next: no circuit breaker per host, and a retry (on another host) only
 * for transport failures, not for an answer too large or a deadline (trying again cannot help those).
 */
export function etcdClientOptions(t: EtcdTuning = {}): Pick<IOptions, 'grpcOptions' | 'faultHandling'> {
  const max = t.maxReceiveBytes ?? DEFAULT_MAX_RECEIVE_BYTES;
  return {
    grpcOptions: { 'grpc.max_receive_message_length': max },
    faultHandling: {
      host: () => retryPolicy(1, () => false),
      global: retryPolicy(
        3,
        (err) =>
          isRecoverableError(err) &&
          !(err instanceof GRPCResourceExhastedError) &&
          !(err instanceof GRPCDeadlineExceededError),
      ),
    },
  };
}

/** etcd's answers when fewer than half of its members are reachable (no leader, proposals time out). */
const NO_QUORUM = /request timed out|no leader|leader changed|unhealthy cluster/;

/**
 * Any failure to reach the datastore becomes VIPMESH_STORE_UNAVAILABLE (HTTP 503), cause kept; etcd's
 * answers without a quorum say so.
 */
export function unavailable(err: unknown): never {
  const msg = (err as Error)?.message ?? String(err);
  const text = NO_QUORUM.test(msg)
    ? `datastore: etcd has lost quorum (fewer than half of its members reachable), writes wait until enough members are back (${msg})`
    : `datastore: ${msg}`;
  throw apiError('VIPMESH_STORE_UNAVAILABLE', text, {}, err);
}

/** A stored key as the Kv gives it, from etcd's KeyValue (int64 as strings or numbers). */
export function pair(
  kv: Pick<IKeyValue, 'key' | 'value'> & { mod_revision: string | number; create_revision: string | number },
): KvPair {
  return {
    key: kv.key.toString(),
    value: kv.value,
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
  };
}

/** Prefix range end as etcd defines it: the prefix with its last byte incremented. */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const end = Buffer.from(b.subarray(0, i + 1));
      end[i]! += 1;
      return end;
    }
  }
  return Buffer.from([0]);
}

/** True for the datastore's "required revision has been compacted". */
function isCompacted(err: unknown): boolean {
  return /compact/i.test((err as Error)?.message ?? '');
}

/**
 * Every key under `prefix`, read with `kv.listPage` in pages of `pageSize` at the first page's revision. If
 * that revision is compacted before the last page (a very long list on a busy store), start over at the
 * current one.
 */
export async function listInPages(
  kv: Pick<Kv, 'listPage'>,
  prefix: string,
  pageSize: number,
): Promise<{ pairs: KvPair[]; revision: number }> {
  for (let attempt = 1; ; attempt++) {
    try {
      const pairs: KvPair[] = [];
      let page = await kv.listPage(prefix, { limit: pageSize });
      const revision = page.revision;
      pairs.push(...page.pairs);
      while (page.more && page.pairs.length > 0) {
        const start = `${page.pairs[page.pairs.length - 1]!.key}\0`;
        page = await kv.listPage(prefix, { limit: pageSize, start, revision });
        pairs.push(...page.pairs);
      }
      return { pairs, revision };
    } catch (err) {
      if (attempt >= 3 || !(err instanceof VipmeshError) || err.code !== 'VIPMESH_API_GONE') throw err;
    }
  }
}

/**
 * {@link Kv} over the `etcd3` client: every conditional write is one Txn comparing `mod_revision`; lists are
 * read in pages of `pageSize` keys at one revision. Build the client with {@link etcdClientOptions}.
 */
export class EtcdKv implements Kv {
  readonly #client: Etcd3;
  readonly #pageSize: number;

  constructor(client: Etcd3, opts: { pageSize?: number } = {}) {
    this.#client = client;
    this.#pageSize = Math.max(1, opts.pageSize ?? DEFAULT_LIST_PAGE_SIZE);
  }

  async get(key: string): Promise<KvPair | undefined> {
    const res = await this.#client.kv.range({ key: Buffer.from(key) }).catch(unavailable);
    return res.kvs[0] === undefined ? undefined : pair(res.kvs[0]);
  }

  /** Page through the prefix at the first page's revision ({@link listInPages}). */
  list(prefix: string): Promise<{ pairs: KvPair[]; revision: number }> {
    return listInPages(this, prefix, this.#pageSize);
  }

  /** One page; a page too large for one gRPC message is read again with half the limit, down to one key. */
  async listPage(prefix: string, opts: KvPageOptions): Promise<KvPage> {
    let limit = Math.max(0, Math.floor(opts.limit));
    for (;;) {
      try {
        const res = await this.#client.kv.range({
          key: Buffer.from(opts.start ?? prefix),
          range_end: prefixEnd(prefix),
          limit,
          ...(opts.revision === undefined ? {} : { revision: opts.revision }),
        });
        return {
          pairs: res.kvs.map(pair),
          revision: opts.revision ?? Number(res.header.revision),
          more: res.more,
        };
      } catch (err) {
        if (err instanceof GRPCResourceExhastedError && limit !== 1) {
          limit = limit === 0 ? this.#pageSize : Math.max(1, Math.floor(limit / 2));
          continue;
        }
        if (opts.revision !== undefined && isCompacted(err)) {
          throw apiError('VIPMESH_API_GONE', `revision ${opts.revision} has been compacted`, {}, err);
        }
        unavailable(err);
      }
    }
  }

  async put(key: string, value: Buffer, expect: number, guard?: KvGuard): Promise<KvWriteResult> {
    return this.#txn(key, expect, { request_put: { key: Buffer.from(key), value } }, guard);
  }

  async delete(key: string, expect: number): Promise<KvWriteResult> {
    return this.#txn(key, expect, { request_delete_range: { key: Buffer.from(key) } });
  }

  async batch(ops: readonly KvOp[]): Promise<number> {
    const success = ops.map((op) =>
      op.value === undefined
        ? { request_delete_range: { key: Buffer.from(op.key) } }
        : { request_put: { key: Buffer.from(op.key), value: op.value } },
    );
    const res = await this.#client.kv.txn({ compare: [], success, failure: [] }).catch(unavailable);
    return Number(res.header.revision);
  }

  async #txn(
    key: string,
    expect: number,
    op: { request_put?: { key: Buffer; value: Buffer }; request_delete_range?: { key: Buffer } },
    guard?: KvGuard,
  ): Promise<KvWriteResult> {
    const k = Buffer.from(key);
    const compare = [{ key: k, target: 'Mod' as const, result: 'Equal' as const, mod_revision: expect }];
    const success: Array<typeof op> = [op];
    if (guard !== undefined) {
      const g = Buffer.from(guard.key);
      compare.push({ key: g, target: 'Mod', result: 'Equal', mod_revision: guard.expect });
      success.push({ request_put: { key: g, value: k } });
    }
    const res = await this.#client.kv
      .txn({
        compare,
        success,
        failure: [{ request_range: { key: k } }],
      })
      .catch(unavailable);
    if (res.succeeded) return { ok: true, revision: Number(res.header.revision) };
    const kv = res.responses[0]?.response_range?.kvs[0];
    return { ok: false, current: kv === undefined ? undefined : pair(kv) };
  }

  async watch(prefix: string, from: number, handlers: KvWatchHandlers): Promise<KvWatch> {
    let watcher: Watcher;
    try {
      watcher = await this.#client
        .watch()
        .prefix(prefix)
        .withPreviousKV()
        .startRevision(String(from))
        .create();
    } catch (err) {
      // etcd may refuse a compacted start revision at creation already (created + canceled).
      throw await this.#watchError(prefix, from, err as Error);
    }
    let done = false;
    watcher.on('data', (res) => {
      for (const ev of res.events) {
        const isDelete = ev.type === 'Delete';
        handlers.event({
          type: isDelete ? 'delete' : 'put',
          key: ev.kv.key.toString(),
          value: isDelete ? (ev.prev_kv?.value ?? Buffer.alloc(0)) : ev.kv.value,
          modRevision: Number(ev.kv.mod_revision),
          created: !isDelete && ev.kv.create_revision === ev.kv.mod_revision,
        });
      }
    });
    watcher.on('error', (err) => {
      if (done) return;
      done = true;
      void this.#watchError(prefix, from, err).then((e) => handlers.error(e));
    });
    return {
      close: async () => {
        done = true;
        await watcher.cancel().catch(() => undefined);
      },
    };
  }

  /**
   * Why a watch ended. etcd cancels a watch whose start revision was compacted, but the `etcd3` client drops
   * the cancel reason, so ask: a read at that revision fails with "required revision has been compacted".
   * Kubernetes answers that with 410 Gone so the client lists again.
   */
  async #watchError(prefix: string, from: number, err: Error): Promise<Error> {
    let compacted = isCompacted(err);
    if (!compacted) {
      compacted = await this.#client.kv
        .range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), revision: from, limit: 1 })
        .then(
          () => false,
          (e: Error) => /compact/i.test(e.message),
        );
    }
    return compacted
      ? apiError('VIPMESH_API_GONE', `revision ${from} has been compacted; list again`, {}, err)
      : apiError('VIPMESH_STORE_UNAVAILABLE', `datastore watch: ${err.message}`, {}, err);
  }

  async revision(): Promise<number> {
    const res = await this.#client.kv.range({ key: Buffer.from([0]), limit: 1 }).catch(unavailable);
    return Number(res.header.revision);
  }

  async close(): Promise<void> {
    this.#client.close();
  }
}
