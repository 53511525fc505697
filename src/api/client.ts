import { Agent, request } from 'node:https';
import { VipmeshError } from '../errors.js';
import { fetchAndPinCA, parseToken } from '../pki/index.js';
import { errorFromStatus, type Status } from './status.js';
import {
  apiVersionOf,
  type KubeObject,
  type ObjectList,
  RESOURCES,
  type ResourceInfo,
  type ResourceName,
  type ResourceTypes,
  type WatchEvent,
} from './types.js';

/** Options for {@link ApiClient.connect}. */
interface ApiClientOptions {
  /** `https://host:6443` */
  server: string;
  /** The admin token, `K10<ca-hash>::admin:<secret>`; its hash pins the CA fetched from /cacerts. */
  token: string;
  /** The CA to trust; default: fetched from `/cacerts` and pinned against the token's hash. */
  caCertPem?: string;
  /** Per-request timeout; default 30 s. */
  timeoutMs?: number;
}

/** Objects per page when the client lists everything. */
const DEFAULT_PAGE_SIZE = 500;

/** The API path of a collection or object: `/api/v1/namespaces/default/services/web`. */
export function pathFor(r: ResourceInfo, namespace?: string, name?: string, sub?: 'status'): string {
  const base = r.group === '' ? '/api/v1' : `/apis/${apiVersionOf(r)}`;
  const ns = r.namespaced && namespace !== undefined ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const item = name === undefined ? '' : `/${encodeURIComponent(name)}${sub === undefined ? '' : `/${sub}`}`;
  return `${base}${ns}/${r.resource}${item}`;
}

function unreachable(server: string, err: unknown): VipmeshError {
  const e = err as NodeJS.ErrnoException;
  return new VipmeshError(
    'VIPMESH_API_UNREACHABLE',
    `cannot reach the vipmesh server at ${server}: ${e.message}`,
    {
      cause: err,
      details: { server, ...(e.code === undefined ? {} : { errno: e.code }) },
    },
  );
}

interface Raw {
  status: number;
  body: Buffer;
}

function send(
  url: URL,
  opts: {
    method: string;
    headers: Record<string, string>;
    agent: Agent;
    body?: Buffer;
    timeoutMs: number;
  },
): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: opts.method,
        headers: opts.headers,
        agent: opts.agent,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs, () =>
      req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A typed client of the API (the CLI's). Errors come back as the VipmeshError codes the store throws. */
export class ApiClient {
  readonly #server: string;
  readonly #token: string;
  readonly #agent: Agent;
  readonly #timeoutMs: number;

  constructor(server: string, token: string, caCertPem: string | undefined, timeoutMs = 30_000) {
    this.#server = server;
    this.#token = token;
    this.#agent = new Agent({ keepAlive: true, ...(caCertPem === undefined ? {} : { ca: caCertPem }) });
    this.#timeoutMs = timeoutMs;
  }

  /** Pin the CA from the token (unless `caCertPem` is given) and return a client. */
  static async connect(opts: ApiClientOptions): Promise<ApiClient> {
    const tok = parseToken(opts.token);
    const ca = opts.caCertPem ?? (await fetchAndPinCA(opts.server, tok.caHash, opts.timeoutMs));
    return new ApiClient(opts.server, opts.token.trim(), ca, opts.timeoutMs);
  }

  /** GET/POST/PUT/DELETE `path` with an optional JSON body; the parsed JSON answer or a VipmeshError. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.#token}`,
      Accept: 'application/json',
    };
    let payload: Buffer | undefined;
    if (body !== undefined) {
      payload = Buffer.from(JSON.stringify(body));
      headers['Content-Type'] = 'application/json';
    }
    let raw: Raw;
    try {
      raw = await send(new URL(path, this.#server), {
        method,
        headers,
        agent: this.#agent,
        timeoutMs: this.#timeoutMs,
        ...(payload === undefined ? {} : { body: payload }),
      });
    } catch (err) {
      throw unreachable(this.#server, err);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.body.toString('utf8'));
    } catch {
      parsed = { message: raw.body.toString('utf8').slice(0, 200) };
    }
    if (raw.status >= 400) throw errorFromStatus(parsed as Partial<Status>, raw.status);
    return parsed as T;
  }

  get<R extends ResourceName>(resource: R, name: string, namespace?: string): Promise<ResourceTypes[R]> {
    return this.request('GET', pathFor(RESOURCES[resource], namespace ?? 'default', name));
  }

  /**
   * List one resource, in `namespace` or (undefined) all namespaces. With `limit`, one page: pass its
   * `metadata.continue` back as `continue` for the next.
   */
  list<R extends ResourceName>(
    resource: R,
    namespace?: string,
    page: { limit?: number; continue?: string } = {},
  ): Promise<ObjectList<ResourceTypes[R]>> {
    const q = new URLSearchParams();
    if (page.limit !== undefined) q.set('limit', String(page.limit));
    if (page.continue !== undefined) q.set('continue', page.continue);
    const query = q.size === 0 ? '' : `?${q.toString()}`;
    return this.request('GET', `${pathFor(RESOURCES[resource], namespace)}${query}`);
  }

  /**
   * Every object of one resource, fetched in pages of `pageSize` [500] at one revision (the first page's,
   * returned as the list's resourceVersion), so no one answer has to hold them all.
   */
  async listAll<R extends ResourceName>(
    resource: R,
    namespace?: string,
    pageSize = DEFAULT_PAGE_SIZE,
  ): Promise<ObjectList<ResourceTypes[R]>> {
    const first = await this.list(resource, namespace, { limit: pageSize });
    const items = [...first.items];
    let cont = first.metadata.continue;
    while (cont !== undefined && cont !== '') {
      const page = await this.list(resource, namespace, { limit: pageSize, continue: cont });
      items.push(...page.items);
      cont = page.metadata.continue;
    }
    return { ...first, metadata: { resourceVersion: first.metadata.resourceVersion }, items };
  }

  create<R extends ResourceName>(resource: R, obj: KubeObject): Promise<ResourceTypes[R]> {
    return this.request('POST', pathFor(RESOURCES[resource], obj.metadata.namespace ?? 'default'), obj);
  }

  update<R extends ResourceName>(resource: R, obj: KubeObject): Promise<ResourceTypes[R]> {
    const ns = obj.metadata.namespace ?? 'default';
    return this.request('PUT', pathFor(RESOURCES[resource], ns, obj.metadata.name), obj);
  }

  delete<R extends ResourceName>(resource: R, name: string, namespace?: string): Promise<ResourceTypes[R]> {
    return this.request('DELETE', pathFor(RESOURCES[resource], namespace ?? 'default', name));
  }

  /**
   * Stream `{type, object}` events of one resource from `resourceVersion` to `onEvent` until `close()`.
   * Resolves once the server has accepted the watch.
   */
  watch<R extends ResourceName>(
    resource: R,
    opts: { namespace?: string; resourceVersion?: string },
    onEvent: (e: WatchEvent<ResourceTypes[R]>) => void,
  ): Promise<{ close(): void; done: Promise<void> }> {
    const q =
      opts.resourceVersion === undefined
        ? ''
        : `&resourceVersion=${encodeURIComponent(opts.resourceVersion)}`;
    const url = new URL(`${pathFor(RESOURCES[resource], opts.namespace)}?watch=1${q}`, this.#server);
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        { method: 'GET', agent: this.#agent, headers: { Authorization: `Bearer ${this.#token}` } },
        (res) => {
          if ((res.statusCode ?? 0) >= 400) {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              try {
                reject(
                  errorFromStatus(
                    JSON.parse(Buffer.concat(chunks).toString()) as Status,
                    res.statusCode ?? 0,
                  ),
                );
              } catch (err) {
                reject(err);
              }
            });
            return;
          }
          let buf = '';
          const done = new Promise<void>((end) => {
            res.on('end', end);
            res.on('close', end);
          });
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buf += chunk;
            for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
              const line = buf.slice(0, i);
              buf = buf.slice(i + 1);
              if (line.trim() !== '') onEvent(JSON.parse(line) as WatchEvent<ResourceTypes[R]>);
            }
          });
          resolve({ close: () => req.destroy(), done });
        },
      );
      req.on('error', (err) => reject(unreachable(this.#server, err)));
      req.end();
    });
  }

  /** Close idle keep-alive connections. */
  close(): void {
    this.#agent.destroy();
  }
}
