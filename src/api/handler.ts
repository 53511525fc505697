import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { VipmeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { Counter, Gauge } from '../metrics.js';
import type { Authenticator } from './auth.js';
import { discovery, versionInfo } from './discovery.js';
import { MAX_JSON_DEPTH, parseStrictJson } from './json-body.js';
import { openApiDocument } from './openapi-route.js';
import { apiError, statusFor } from './status.js';
import type { ResourceStore, StoreWatch, WriteOptions } from './store.js';
import { parseIncludeObject, tableVersionOf, toTable } from './table.js';
import { apiVersionOf, type KubeObject, RESOURCES, type ResourceInfo } from './types.js';
import { patchObject, patchTypeOf, writeOptionsOf } from './verbs.js';

/** Options for {@link ApiHandler}. */
export interface ApiHandlerOptions {
  store: ResourceStore;
  /** Bearer-token check (see `tokenAuthenticator`); only the `admin` principal may use the API. */
  authenticate: Authenticator;
  logger: Logger;
  /** Served unauthenticated at `/cacerts`, so clients can pin it against their token's hash. */
  caCertPem?: string;
  /** `/readyz` answers 200 only while this is true; default: always. */
  ready?: () => boolean;
  /**
   * Other routes on the same port (the tunnel's `/v1/connect`): called first, before authentication; return
   * true when it handled the request.
   */
  extraRoutes?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Where `vipmesh_controlplane_api_*` metrics go; default none. */
  registry?: Registry;
  /** Largest request body accepted; default 3 MiB (Kubernetes' limit). */
  maxBodyBytes?: number;
  /** How often a watch that allows bookmarks gets a BOOKMARK event; default 60 s, as kube-apiserver. */
  bookmarkIntervalMs?: number;
  /** vipmesh's version, reported at `/version`; default `0.0.0`. */
  version?: string;
  /**
   * How an object read from the store is shown (fields kept elsewhere filled in, e.g. a Node's VIPs);
   * default as stored. Applied to gets, lists, Tables and watch events.
   */
  view?: (resource: string, obj: KubeObject) => KubeObject;
}

/** A parsed API path. */
interface Route {
  r: ResourceInfo;
  namespace: string | undefined;
  name: string | undefined;
  status: boolean;
}

/**
 * The Kubernetes-shaped HTTPS JSON API as a request handler: mount `handler.handle` on an https.Server
 * (`createApiServer` does, for tests and the server). Paths: `/api/v1/nodes`, `/api/v1/namespaces/NS/services`,
 * `/api/v1/services` (all namespaces), `/apis/metallb.io/v1beta1/namespaces/NS/ipaddresspools`, ...;
 * GET (list, get, `?watch=1`), POST, PUT (also `/status`), DELETE. Errors are Kubernetes Status objects.
 */
export class ApiHandler {
  readonly #o: ApiHandlerOptions;
  readonly #watches = new Set<{ w: StoreWatch; res: ServerResponse }>();
  readonly #requests: Counter<'verb' | 'resource' | 'code'> | undefined;
  readonly #watchGauge: Gauge | undefined;

  constructor(opts: ApiHandlerOptions) {
    this.#o = opts;
    if (opts.registry !== undefined) {
      this.#requests = new Counter({
        name: 'vipmesh_controlplane_api_requests_total',
        help: 'API requests by verb, resource and HTTP status',
        labelNames: ['verb', 'resource', 'code'],
        registers: [opts.registry],
      });
      this.#watchGauge = new Gauge({
        name: 'vipmesh_controlplane_api_watches',
        help: 'Watch streams open now',
        registers: [opts.registry],
      });
    }
  }

  /** The request listener. Never throws; every failure is answered with a Status. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.#serve(req, res).catch((err: unknown) => this.#fail(req, res, err, 'unknown'));
  };

  /** End every open watch stream (server shutdown). */
  async close(): Promise<void> {
    const all = [...this.#watches];
    this.#watches.clear();
    await Promise.all(
      all.map(async ({ w, res }) => {
        await w.close();
        res.end();
      }),
    );
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://vipmesh.invalid');
    const path = url.pathname;
    if (path === '/healthz' || path === '/livez') return this.#text(res, 200, 'ok');
    if (path === '/readyz') {
      const ok = this.#o.ready?.() ?? true;
      return this.#text(res, ok ? 200 : 503, ok ? 'ok' : 'not ready');
    }
    if (path === '/cacerts' && this.#o.caCertPem !== undefined) {
      res.writeHead(200, { 'Content-Type': 'application/x-pem-file' });
      res.end(this.#o.caCertPem);
      return;
    }
    if (this.#o.extraRoutes?.(req, res) === true) return;

    const who = this.#o.authenticate(req.headers.authorization);
    if (who === undefined)
      throw apiError('VIPMESH_API_UNAUTHORIZED', 'Unauthorized: a valid admin token is required');
    // As kube-apiserver grants every authenticated user: the version and what the API serves.
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (path === '/version' || path === '/version/') {
        return this.#json(res, 200, versionInfo(this.#o.version ?? '0.0.0'));
      }
      const doc =
        discovery(path, req.headers.accept) ??
        openApiDocument(path, req.headers.accept, this.#o.version ?? '0.0.0');
      if (doc !== undefined) {
        res.writeHead(200, { 'Content-Type': doc.contentType });
        res.end(Buffer.isBuffer(doc.body) ? doc.body : JSON.stringify(doc.body));
        return;
      }
    }
    if (who !== 'admin') {
      throw apiError('VIPMESH_API_FORBIDDEN', 'Forbidden: the join token does not grant access to the API');
    }
    const route = parsePath(path);
    const verb = req.method ?? 'GET';
    const { r, namespace, name } = route;
    const store = this.#o.store;
    const q = url.searchParams;
    const table = tableVersionOf(req.headers.accept);
    let code = 200;
    let body: unknown;
    const wo = writeOptionsOf(verb === 'GET' ? new URLSearchParams() : q);
    if (name === undefined) {
      if (verb === 'GET') {
        const opts = {
          ...(namespace === undefined ? {} : { namespace }),
          ...(q.has('labelSelector') ? { labelSelector: q.get('labelSelector')! } : {}),
          ...(q.has('fieldSelector') ? { fieldSelector: q.get('fieldSelector')! } : {}),
        };
        if (boolParam(q.get('watch'))) {
          const rv = q.get('resourceVersion');
          return this.#watch(res, r, { ...opts, ...(rv === null ? {} : { resourceVersion: rv }) }, q, table);
        }
        const list = this.#viewList(r.resource, await store.list(r.resource, { ...opts, ...pageParams(q) }));
        body = table === undefined ? list : await this.#table(r, list.items, q, table, list.metadata);
      } else if (verb === 'POST' && (namespace !== undefined || !r.namespaced)) {
        const obj = checkBody(await this.#body(req, wo), route);
        body = await store.create(r.resource, obj, wo);
        code = 201;
      } else {
        throw notAllowed(verb, path);
      }
    } else if (verb === 'GET' && !route.status) {
      const obj = this.#view(r.resource, await store.get(r.resource, name, namespace));
      body = table === undefined ? obj : await this.#table(r, [obj], q, table);
    } else if (verb === 'PUT') {
      const obj = checkBody(await this.#body(req, wo), route);
      body = route.status
        ? await store.updateStatus(r.resource, obj, wo)
        : await store.update(r.resource, obj, wo);
    } else if (verb === 'PATCH') {
      const type = patchTypeOf(req.headers['content-type'], r);
      const patch = await this.#body(req, wo, false, true);
      body = await patchObject(store, r, { name, namespace, status: route.status }, type, patch, wo, (o) =>
        checkBody(o, route),
      );
    } else if (verb === 'DELETE' && !route.status) {
      const raw = req.headers['content-length'] === '0' ? undefined : await this.#body(req, wo, true);
      const rv = (raw as { preconditions?: { resourceVersion?: unknown } } | undefined)?.preconditions
        ?.resourceVersion;
      const dry = (raw as { dryRun?: unknown } | undefined)?.dryRun;
      if (Array.isArray(dry) && dry.includes('All')) wo.dryRun = true;
      body = await store.delete(r.resource, name, namespace, {
        ...(typeof rv === 'string' ? { resourceVersion: rv } : {}),
        ...(wo.dryRun === true ? { dryRun: true } : {}),
      });
    } else {
      throw notAllowed(verb, path);
    }
    if (wo.warnings.length > 0) res.setHeader('Warning', wo.warnings.map(warningHeader));
    this.#json(res, code, body);
    this.#requests?.inc({ verb, resource: r.resource, code });
  }

  /** `items` as a Table; a Service table gets the Nodes, for the node holding each VIP. */
  async #table(
    r: ResourceInfo,
    items: KubeObject[],
    q: URLSearchParams,
    version: 'v1' | 'v1beta1',
    listMeta?: { resourceVersion?: string; continue?: string },
  ): Promise<unknown> {
    const nodes =
      r.resource === 'services'
        ? (await this.#o.store.list('nodes')).items.map((n) => this.#view('nodes', n))
        : undefined;
    return toTable(items, r.kind, {
      version,
      includeObject: parseIncludeObject(q.get('includeObject')),
      now: Date.now(),
      ...(nodes === undefined ? {} : { nodes }),
      ...(listMeta === undefined ? {} : { listMeta }),
    });
  }

  async #watch(
    res: ServerResponse,
    r: ResourceInfo,
    opts: { namespace?: string; labelSelector?: string; fieldSelector?: string; resourceVersion?: string },
    q: URLSearchParams,
    table: 'v1' | 'v1beta1' | undefined,
  ): Promise<void> {
    const timeoutS = q.get('timeoutSeconds');
    const timeoutMs = timeoutS !== null && /^\d+$/.test(timeoutS) ? Number(timeoutS) * 1000 : 0;
    const bookmarks = boolParam(q.get('allowWatchBookmarks'));
    const w = await this.#o.store.watch(r.resource, opts);
    const entry = { w, res };
    this.#watches.add(entry);
    this.#watchGauge?.inc();
    this.#requests?.inc({ verb: 'WATCH', resource: r.resource, code: 200 });
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.flushHeaders();
    const timers: NodeJS.Timeout[] = [];
    const stop = () => {
      for (const t of timers) clearTimeout(t);
      if (!this.#watches.delete(entry)) return;
      this.#watchGauge?.dec();
      void w.close();
    };
    let revision = w.revision;
    // Events are written in order: a Table event waits for the one before it.
    let queue: Promise<void> = Promise.resolve();
    w.on('event', (e) => {
      revision = Math.max(revision, Number(e.object.metadata.resourceVersion ?? 0));
      queue = queue.then(async () => {
        const shown = this.#view(r.resource, e.object);
        const object = table === undefined ? shown : await this.#table(r, [shown], q, table);
        if (!res.writableEnded) res.write(`${JSON.stringify({ type: e.type, object })}\n`);
      });
    });
    w.on('error', (err) => {
      res.end(`${JSON.stringify({ type: 'ERROR', object: statusFor(err) })}\n`);
      stop();
    });
    if (bookmarks) {
      const every = this.#o.bookmarkIntervalMs ?? 60_000;
      const mark = () => {
        queue = queue.then(() => {
          const object = {
            kind: r.kind,
            apiVersion: apiVersionOf(r),
            metadata: { resourceVersion: String(revision) },
          };
          if (!res.writableEnded) res.write(`${JSON.stringify({ type: 'BOOKMARK', object })}\n`);
        });
        timers[0] = setTimeout(mark, every);
      };
      timers[0] = setTimeout(mark, every);
    }
    if (timeoutMs > 0) {
      timers[1] = setTimeout(() => {
        void queue.then(() => res.end());
      }, timeoutMs);
    }
    // 'close' on the response: it ended, or the client went away mid-stream.
    res.on('close', stop);
  }

  #view<T extends KubeObject>(resource: string, obj: T): T {
    return this.#o.view === undefined ? obj : (this.#o.view(resource, obj) as T);
  }

  #viewList<L extends { items: KubeObject[] }>(resource: string, list: L): L {
    if (this.#o.view === undefined) return list;
    return { ...list, items: list.items.map((o) => this.#view(resource, o)) };
  }

  async #body(
    req: IncomingMessage,
    wo: WriteOptions & { warnings: string[] },
    optional = false,
    patch = false,
  ): Promise<unknown> {
    const max = this.#o.maxBodyBytes ?? 3 << 20;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      // Keep reading (and dropping) past the limit: answering before the client has sent everything
      // resets the connection under it and it never sees the 413. Only an authenticated admin gets here.
      if (size <= max) chunks.push(chunk as Buffer);
    }
    if (size > max) throw apiError('VIPMESH_API_TOO_LARGE', `the request body is larger than ${max} bytes`);
    const text = Buffer.concat(chunks).toString('utf8');
    if (optional && text.trim() === '') return undefined;
    if (!patch) checkMediaType(req.headers['content-type']);
    const fv = wo.fieldValidation;
    if (fv === 'Warn' || fv === 'Ignore') {
      return parseStrictJson(text, MAX_JSON_DEPTH, (path) => {
        if (fv === 'Warn') wo.warnings.push(`duplicate field "${path}"`);
      });
    }
    return parseStrictJson(text);
  }

  #json(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  #text(res: ServerResponse, code: number, text: string): void {
    res.writeHead(code, { 'Content-Type': 'text/plain' });
    res.end(text);
  }

  #fail(req: IncomingMessage, res: ServerResponse, err: unknown, resource: string): void {
    const status = statusFor(err);
    if (status.code >= 500) {
      this.#o.logger.warn({ err, method: req.method, url: req.url }, 'API request failed');
    } else {
      this.#o.logger.debug({ method: req.method, url: req.url, code: status.code }, status.message);
    }
    this.#requests?.inc({ verb: req.method ?? 'GET', resource, code: status.code });
    if (res.headersSent) {
      res.end();
      return;
    }
    if (status.code === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="vipmesh"');
    this.#json(res, status.code, status);
  }
}

/** `limit` (a non-negative integer; 0: no limit) and `continue` of a list. */
function pageParams(q: URLSearchParams): { limit?: number; continue?: string } {
  const out: { limit?: number; continue?: string } = {};
  const limit = q.get('limit');
  if (limit !== null && limit !== '') {
    const n = Number(limit);
    if (!/^\d+$/.test(limit) || !Number.isSafeInteger(n)) {
      throw apiError(
        'VIPMESH_API_BAD_REQUEST',
        `limit: "${limit.slice(0, 32)}" is not a non-negative integer`,
      );
    }
    out.limit = n;
  }
  const cont = q.get('continue');
  if (cont !== null && cont !== '') out.continue = cont;
  return out;
}

/**
 * Bodies are JSON: `application/json` (any parameters), or no Content-Type at all. Anything else is
 * `VIPMESH_API_UNSUPPORTED_MEDIA_TYPE` (415), as kube-apiserver answers.
 */
function checkMediaType(header: string | undefined): void {
  if (header === undefined) return;
  const type = header.split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') return;
  throw apiError(
    'VIPMESH_API_UNSUPPORTED_MEDIA_TYPE',
    `the body of the request was in an unknown format (Content-Type: ${header.slice(0, 100)}); accepted media types include: application/json`,
  );
}

/** A boolean query parameter as Go's ParseBool reads it (client-go sends `true`, the Python client `True`). */
function boolParam(v: string | null): boolean {
  return v !== null && ['1', 't', 'T', 'true', 'True', 'TRUE'].includes(v);
}

/** A `Warning` header value (RFC 7234 warn-code 299), the form kubectl prints as `Warning: ...`. */
function warningHeader(text: string): string {
  return `299 - ${JSON.stringify(text)}`;
}

function notAllowed(verb: string, path: string): VipmeshError {
  return apiError('VIPMESH_API_METHOD_NOT_ALLOWED', `${verb} is not supported on ${path}`);
}

function notFoundPath(path: string): VipmeshError {
  return apiError('VIPMESH_API_NOT_FOUND', `the server could not find the requested resource (${path})`);
}

/**
 * `/api/v1/namespaces/NS/services/NAME/status` -> the route. Unknown paths are `VIPMESH_API_NOT_FOUND`.
 * Exported for the property test.
 */
export function parsePath(path: string): Route {
  let segs: string[];
  try {
    segs = path
      .split('/')
      .filter((s) => s !== '')
      .map(decodeURIComponent);
  } catch {
    throw notFoundPath(path); // malformed %-escapes name nothing we serve
  }
  let gv: string;
  let rest: string[];
  if (segs[0] === 'api' && segs[1] === 'v1') {
    gv = 'v1';
    rest = segs.slice(2);
  } else if (segs[0] === 'apis' && segs.length >= 3) {
    gv = `${segs[1]}/${segs[2]}`;
    rest = segs.slice(3);
  } else {
    throw notFoundPath(path);
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const r = Object.values(RESOURCES).find((x) => x.resource === rest[0]);
  if (r === undefined || apiVersionOf(r) !== gv || rest.length > 3) throw notFoundPath(path);
  if (rest.length === 3 && (rest[2] !== 'status' || !r.hasStatus)) throw notFoundPath(path);
  if (namespace !== undefined && !r.namespaced) throw notFoundPath(path);
  // A namespaced object is addressed only inside its namespace; across namespaces there are only lists.
  if (r.namespaced && namespace === undefined && rest.length > 1) throw notFoundPath(path);
  return { r, namespace, name: rest[1], status: rest.length === 3 };
}

/** The body of a POST/PUT must be an object of the route's kind, named and namespaced as the path says. */
function checkBody(body: unknown, route: Route): KubeObject {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw apiError('VIPMESH_API_BAD_REQUEST', 'the request body must be a JSON object');
  }
  const o = body as KubeObject;
  if (typeof o.metadata !== 'object' || o.metadata === null) o.metadata = {} as KubeObject['metadata'];
  const meta = o.metadata;
  if (route.namespace !== undefined) {
    if (meta.namespace !== undefined && meta.namespace !== route.namespace) {
      throw apiError(
        'VIPMESH_API_BAD_REQUEST',
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    }
    meta.namespace = route.namespace;
  }
  if (route.name !== undefined) {
    if (meta.name !== undefined && meta.name !== route.name) {
      throw apiError('VIPMESH_API_BAD_REQUEST', 'the name of the object does not match the name on the URL');
    }
    meta.name = route.name;
  }
  return o;
}
