import { Etcd3, type IKeyValue, type IOptions, type Watcher } from 'etcd3';
import type { Kv, KvPair, KvWatch, KvWatchHandlers, KvWriteResult } from './kv.js';
import { apiError } from './status.js';

/** Options for {@link createEtcdKv}. */
export interface EtcdKvOptions {
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
  return new EtcdKv(new Etcd3({ ...opts.client, hosts }));
}

/** Any failure to reach the datastore becomes VIPMESH_STORE_UNAVAILABLE (HTTP 503), cause kept. */
function unavailable(err: unknown): never {
  throw apiError(
    'VIPMESH_STORE_UNAVAILABLE',
    `datastore: ${(err as Error)?.message ?? String(err)}`,
    {},
    err,
  );
}

function pair(kv: IKeyValue): KvPair {
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

/** {@link Kv} over the `etcd3` client: every conditional write is one Txn comparing `mod_revision`. */
export class EtcdKv implements Kv {
  readonly #client: Etcd3;

  constructor(client: Etcd3) {
    this.#client = client;
  }

  async get(key: string): Promise<KvPair | undefined> {
    const res = await this.#client.kv.range({ key: Buffer.from(key) }).catch(unavailable);
    return res.kvs[0] === undefined ? undefined : pair(res.kvs[0]);
  }

  async list(prefix: string): Promise<{ pairs: KvPair[]; revision: number }> {
    const res = await this.#client.kv
      .range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) })
      .catch(unavailable);
    return { pairs: res.kvs.map(pair), revision: Number(res.header.revision) };
  }

  async put(key: string, value: Buffer, expect: number): Promise<KvWriteResult> {
    return this.#txn(key, expect, { request_put: { key: Buffer.from(key), value } });
  }

  async delete(key: string, expect: number): Promise<KvWriteResult> {
    return this.#txn(key, expect, { request_delete_range: { key: Buffer.from(key) } });
  }

  async #txn(
    key: string,
    expect: number,
    op: { request_put?: { key: Buffer; value: Buffer }; request_delete_range?: { key: Buffer } },
  ): Promise<KvWriteResult> {
    const k = Buffer.from(key);
    const res = await this.#client.kv
      .txn({
        compare: [{ key: k, target: 'Mod', result: 'Equal', mod_revision: expect }],
        success: [op],
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
    let compacted = /compact/i.test(err.message);
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
