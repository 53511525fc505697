import { randomUUID } from 'node:crypto';
import type { Registry } from 'prom-client';
import { type Clock, systemClock } from '../clock.js';
import { VipmeshError } from '../errors.js';
import { Counter } from '../metrics.js';
import { type FieldValidation, handleUnknownFields } from './field-validation.js';
import type { Kv, KvEvent, KvGuard, KvPair } from './kv.js';
import { checkMeta, keyOf, nameSuffix, prefixOf, specPart, stripVolatile } from './meta.js';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from './selector.js';
import { apiError, invalidError, type SetValidator, type Validator } from './status.js';
import { StoreWatch } from './store-watch.js';

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

/**
 * The key every write of a `setResources` object (address pools, ConfigMaps) also compares and rewrites:
 * one such write at a time succeeds, and the others check the set again.
 */
const SET_GUARD_KEY = '/vipmesh/guards/address-pools';
/** Checks against a set that moved before giving up: each round lets at least one writer through. */
const MAX_GUARD_RETRIES = 100;
/** {@link ResourceStore}'s internal answer: the set's guard moved before the write. */
const GUARD_MOVED = Symbol('guard moved');

// Re-exported: the informer, the API handler and tests import these from here.
export { canonicalJson } from './meta.js';
export { StoreWatch } from './store-watch.js';

/** Options for {@link ResourceStore}. */
interface ResourceStoreOptions {
  /** The datastore (etcd, the embedded one, or MemoryKv in tests). */
  kv: Kv;
  /** Field validation for create/update (vip-pool's `validateObject`); default: names only. */
  validate?: Validator;
  /** Which resources `validate` is asked about; default all but Nodes and Events. */
  validated?: ResourceName[];
  /**
   * Checks of an object against the stored objects of `setResources` (vip-pool's `poolConflicts`: a pool
   * overlapping or named like a stored one); default none.
   */
  validateSet?: SetValidator;
  /** The resources `validateSet` is asked about and given; default IPAddressPools and ConfigMaps. */
  setResources?: ResourceName[];
  /** For `creationTimestamp`; default the system clock. */
  clock?: Clock;
  /** Where `vipmesh_controlplane_store_*` metrics go; default none. */
  registry?: Registry;
}

/** Options of {@link ResourceStore.list}. */
interface ListOptions {
  /** Only this namespace; default all. Ignored for cluster-scoped resources. */
  namespace?: string;
  /** Label selector, `app=web,tier!=db,env in (a,b)`. */
  labelSelector?: string;
  /** Field selector on `metadata.name` / `metadata.namespace`, `metadata.name=web`. */
  fieldSelector?: string;
}

/** The filter a list or watch applies: its label and field selectors together. */
type Matcher = (o: KubeObject) => boolean;

function matcherOf(r: ResourceInfo, opts: ListOptions): Matcher {
  const labels = parseLabelSelector(opts.labelSelector ?? '');
  const fields = parseFieldSelector(opts.fieldSelector ?? '', r.kind);
  return (o) => matchesLabels(labels, o.metadata.labels) && matchesFields(fields, o);
}

/** Options of a write. */
export interface WriteOptions {
  /** Check and answer as the write would, but store nothing (Kubernetes' `dryRun=All`). */
  dryRun?: boolean;
  /** What becomes of undeclared fields (see field-validation.ts); default: refused as invalid. */
  fieldValidation?: FieldValidation | undefined;
  /** Where `Warn` puts its warnings, for the `Warning` header. */
  warnings?: string[];
}

/** Options of a paged {@link ResourceStore.list} (Kubernetes' `limit` and `continue`). */
export interface ListPageOptions extends ListOptions {
  /** At most this many items; the list's `metadata.continue` then names the rest. 0 or absent: all. */
  limit?: number;
  /** The `metadata.continue` of the previous page: the next page, at the first page's revision. */
  continue?: string;
}

/** Keys read per datastore page while filling a page of `limit` items through a label selector. */
const FILL_PAGE_SIZE = 500;

/** The continue token: base64 of the next key (relative to the list's prefix) and the first page's revision. */
interface ContinueToken {
  rv: number;
  start: string;
}

function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify({ v: 1, rv: t.rv, start: t.start })).toString('base64url');
}

function decodeContinue(token: string): ContinueToken {
  let t: { v?: unknown; rv?: unknown; start?: unknown };
  try {
    t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as typeof t;
  } catch {
    t = {};
  }
  if (
    t === null ||
    typeof t !== 'object' ||
    t.v !== 1 ||
    typeof t.rv !== 'number' ||
    !Number.isSafeInteger(t.rv) ||
    t.rv < 1 ||
    typeof t.start !== 'string'
  ) {
    throw apiError('VIPMESH_API_BAD_REQUEST', `continue: "${token.slice(0, 64)}" is not a continue token`);
  }
  return { rv: t.rv, start: t.start };
}

/** Options of {@link ResourceStore.watch}. */
interface WatchOptions extends ListOptions {
  /**
   * Changes after this resourceVersion. Absent or `0`: first an ADDED event for every existing object, then
   * the changes after them (Kubernetes' "get state and start at most recent").
   */
  resourceVersion?: string;
}

/**
 * Typed Kubernetes-style objects over an etcd v3 KV: keys `/registry/<resource>/<ns>/<name>`,
 * `metadata.resourceVersion` = the key's mod revision, every write one Txn comparing it (a stale
 * resourceVersion is `VIPMESH_API_CONFLICT`, HTTP 409). The API server and the controllers share one.
 */
export class ResourceStore {
  readonly #kv: Kv;
  readonly #validate: Validator | undefined;
  readonly #validated: Set<ResourceName>;
  readonly #validateSet: SetValidator | undefined;
  readonly #setResources: ResourceName[];
  readonly #clock: Clock;
  readonly #ops: Counter<'op' | 'result'> | undefined;

  constructor(opts: ResourceStoreOptions) {
    this.#kv = opts.kv;
    this.#validate = opts.validate;
    this.#validated = new Set(
      opts.validated ?? [
        'services',
        'ipaddresspools',
        'l2advertisements',
        'configmaps',
        'namespaces',
        'endpoints',
        'endpointslices',
      ],
    );
    this.#validateSet = opts.validateSet;
    this.#setResources = opts.setResources ?? ['ipaddresspools', 'configmaps'];
    this.#clock = opts.clock ?? systemClock;
    this.#ops =
      opts.registry === undefined
        ? undefined
        : new Counter({
            name: 'vipmesh_controlplane_store_ops_total',
            help: 'Resource store operations by verb and result (ok, or the error code)',
            labelNames: ['op', 'result'],
            registers: [opts.registry],
          });
  }

  /** One object; `VIPMESH_API_NOT_FOUND` when absent. `namespace` defaults to `default`. */
  async get<R extends ResourceName>(
    resource: R,
    name: string,
    namespace?: string,
  ): Promise<ResourceTypes[R]> {
    return this.#count('get', async () => {
      const r = RESOURCES[resource];
      const pair = await this.#kv.get(keyOf(r, name, namespace));
      if (pair === undefined) throw notFound(r, name);
      return this.#decode<R>(r, pair);
    });
  }

  /**
   * Every object of a resource; the list's resourceVersion is the store revision it was read at. With
   * `limit`, one page: `metadata.continue` is set while objects remain, and passing it back reads the next
   * page at the first page's revision (`VIPMESH_API_GONE` once that revision is compacted).
   */
  async list<R extends ResourceName>(
    resource: R,
    opts: ListPageOptions = {},
  ): Promise<ObjectList<ResourceTypes[R]>> {
    return this.#count('list', async () => {
      const r = RESOURCES[resource];
      const sel = matcherOf(r, opts);
      if ((opts.limit ?? 0) > 0 || (opts.continue ?? '') !== '') return this.#page<R>(r, sel, opts);
      const { pairs, revision } = await this.#kv.list(prefixOf(r, opts.namespace));
      const items = pairs.map((p) => this.#decode<R>(r, p)).filter(sel);
      return {
        apiVersion: apiVersionOf(r),
        kind: `${r.kind}List`,
        metadata: { resourceVersion: String(revision) },
        items,
      };
    });
  }

  async #page<R extends ResourceName>(
    r: ResourceInfo,
    sel: Matcher,
    opts: ListPageOptions,
  ): Promise<ObjectList<ResourceTypes[R]>> {
    const prefix = prefixOf(r, opts.namespace);
    const limit = opts.limit !== undefined && opts.limit > 0 ? opts.limit : Number.POSITIVE_INFINITY;
    const from = (opts.continue ?? '') === '' ? undefined : decodeContinue(opts.continue!);
    let revision = from?.rv;
    // The relative key is appended to the prefix: a token can never reach keys outside this list.
    let start = from === undefined ? prefix : prefix + from.start;
    const items: Array<ResourceTypes[R]> = [];
    let next: string | undefined;
    for (;;) {
      const want = Number.isFinite(limit) ? limit - items.length : FILL_PAGE_SIZE;
      let page: Awaited<ReturnType<Kv['listPage']>>;
      try {
        page = await this.#kv.listPage(prefix, {
          limit:
            opts.labelSelector === undefined && opts.fieldSelector === undefined
              ? want
              : Math.max(want, FILL_PAGE_SIZE),
          start,
          ...(revision === undefined ? {} : { revision }),
        });
      } catch (err) {
        if (from !== undefined && err instanceof VipmeshError && err.code === 'VIPMESH_API_GONE') {
          throw apiError(
            'VIPMESH_API_GONE',
            `The provided continue parameter is too old to display a consistent list result (revision ${from.rv} has been compacted). You can start a new list without the continue parameter.`,
            {},
            err,
          );
        }
        throw err;
      }
      revision ??= page.revision;
      let i = 0;
      for (; i < page.pairs.length && items.length < limit; i++) {
        const o = this.#decode<R>(r, page.pairs[i]!);
        if (sel(o)) items.push(o);
      }
      const last = page.pairs[i - 1];
      const rest = i < page.pairs.length || page.more;
      if (!rest || last === undefined) break;
      start = `${last.key}\0`;
      if (items.length >= limit) {
        next = start;
        break;
      }
    }
    return {
      apiVersion: apiVersionOf(r),
      kind: `${r.kind}List`,
      metadata: {
        resourceVersion: String(revision),
        ...(next === undefined
          ? {}
          : { continue: encodeContinue({ rv: revision, start: next.slice(prefix.length) }) }),
      },
      items,
    };
  }

  /**
   * Create `obj`; `VIPMESH_API_ALREADY_EXISTS` if it exists, `VIPMESH_API_INVALID` naming the bad field.
   * Without `metadata.name`, `metadata.generateName` plus five random characters names it (events).
   */
  async create<R extends ResourceName>(
    resource: R,
    obj: ResourceTypes[R] | KubeObject,
    wo: WriteOptions = {},
  ): Promise<ResourceTypes[R]> {
    return this.#count('create', async () => {
      const r = RESOURCES[resource];
      const gen = (obj as KubeObject).metadata?.generateName;
      const named = (obj as KubeObject).metadata?.name;
      const generated = typeof gen === 'string' && (named === undefined || named === '');
      for (let attempt = 0; ; attempt++) {
        const input = generated
          ? { ...obj, metadata: { ...(obj as KubeObject).metadata, name: `${gen}${nameSuffix()}` } }
          : obj;
        const o = this.#prepare(r, input, wo);
        const guard = await this.#checkSet(r, o);
        o.metadata.uid = randomUUID();
        o.metadata.creationTimestamp = new Date(this.#clock.now()).toISOString().replace(/\.\d+Z$/, 'Z');
        o.metadata.generation = 1;
        const key = keyOf(r, o.metadata.name, o.metadata.namespace);
        if (wo.dryRun === true) {
          if ((await this.#kv.get(key)) === undefined) return o as ResourceTypes[R];
          throw alreadyExists(r, o.metadata.name);
        }
        const res = await this.#kv.put(key, Buffer.from(stripVolatile(o)), 0, guard);
        if (res.ok) {
          o.metadata.resourceVersion = String(res.revision);
          return o as ResourceTypes[R];
        }
        if (guard !== undefined && res.current === undefined) {
          // Another write to the set came first: check against it again.
          this.#guardRetry(r, o.metadata.name, attempt);
          continue;
        }
        if (!generated || attempt >= 8) throw alreadyExists(r, o.metadata.name);
      }
    });
  }

  /**
   * Replace `obj` (its status is kept as stored when the resource has a status subresource). With
   * `metadata.resourceVersion` the write happens only if it is current (else `VIPMESH_API_CONFLICT`);
   * without, it is unconditional. An update that changes nothing writes nothing and keeps the version.
   */
  async update<R extends ResourceName>(
    resource: R,
    obj: ResourceTypes[R] | KubeObject,
    wo: WriteOptions = {},
  ): Promise<ResourceTypes[R]> {
    return this.#count('update', async () => {
      const r = RESOURCES[resource];
      const o = this.#prepare(r, obj, wo);
      for (let attempt = 0; ; attempt++) {
        const guard = await this.#checkSet(r, o);
        const done = await this.#replace<R>(
          r,
          o,
          wo,
          (cur) => {
            const next: KubeObject = { ...o, metadata: { ...o.metadata } };
            next.metadata.uid = cur.metadata.uid;
            next.metadata.creationTimestamp = cur.metadata.creationTimestamp;
            if (r.hasStatus) {
              if (cur['status'] === undefined) delete next['status'];
              else next['status'] = cur['status'];
            }
            const gen = cur.metadata.generation ?? 1;
            next.metadata.generation = specPart(next) === specPart(cur) ? gen : gen + 1;
            return next;
          },
          guard,
        );
        if (done !== GUARD_MOVED) return done;
        this.#guardRetry(r, o.metadata.name, attempt);
      }
    });
  }

  /** Replace only `status` (the controllers' write). Same resourceVersion rules as {@link update}. */
  async updateStatus<R extends ResourceName>(
    resource: R,
    obj: ResourceTypes[R] | KubeObject,
    wo: WriteOptions = {},
  ): Promise<ResourceTypes[R]> {
    return this.#count('updateStatus', async () => {
      const r = RESOURCES[resource];
      const o = this.#prepare(r, obj, wo, false);
      const done = await this.#replace<R>(r, o, wo, (cur) => {
        const next: KubeObject = { ...cur, metadata: { ...cur.metadata } };
        if (o['status'] === undefined) delete next['status'];
        else next['status'] = o['status'];
        return next;
      });
      if (done === GUARD_MOVED) throw new Error('unreachable: a status write has no guard');
      return done;
    });
  }

  /** Delete one object and return it as it was; `resourceVersion` makes the delete conditional. */
  async delete<R extends ResourceName>(
    resource: R,
    name: string,
    namespace?: string,
    opts: { resourceVersion?: string } & WriteOptions = {},
  ): Promise<ResourceTypes[R]> {
    return this.#count('delete', async () => {
      const r = RESOURCES[resource];
      const key = keyOf(r, name, namespace);
      for (;;) {
        const pair = await this.#kv.get(key);
        if (pair === undefined) throw notFound(r, name);
        checkVersion(r, name, opts.resourceVersion, pair.modRevision);
        if (opts.dryRun === true) return this.#decode<R>(r, pair);
        const res = await this.#kv.delete(key, pair.modRevision);
        if (res.ok) return this.#decode<R>(r, pair);
        if (opts.resourceVersion !== undefined) throw conflict(r, name);
      }
    });
  }

  /** Watch one resource (see {@link WatchOptions}); listen for `event` and `error` on the result. */
  async watch<R extends ResourceName>(
    resource: R,
    opts: WatchOptions = {},
  ): Promise<StoreWatch<ResourceTypes[R]>> {
    const r = RESOURCES[resource];
    const sel = matcherOf(r, opts);
    const w = new StoreWatch<ResourceTypes[R]>();
    const rv = opts.resourceVersion;
    let from: number;
    const initial: Array<WatchEvent<ResourceTypes[R]>> = [];
    if (rv === undefined || rv === '' || rv === '0') {
      const list = await this.list(resource, opts);
      for (const object of list.items) initial.push({ type: 'ADDED', object });
      from = Number(list.metadata.resourceVersion) + 1;
    } else {
      const n = Number(rv);
      if (!Number.isSafeInteger(n) || n < 0) {
        throw apiError('VIPMESH_API_BAD_REQUEST', `resourceVersion "${rv}" is not a revision number`);
      }
      from = n + 1;
    }
    w.revision = from - 1;
    for (const e of initial) w.push(e);
    // With a selector, an object leaving the selection is DELETED and one entering it ADDED, as Kubernetes
    // sends them: that needs the keys selected at the watch's start.
    const selective = (opts.labelSelector ?? '') !== '' || (opts.fieldSelector ?? '') !== '';
    const selected = new Set<string>();
    if (selective) {
      if (rv === undefined || rv === '' || rv === '0') {
        for (const e of initial) selected.add(keyOf(r, e.object.metadata.name, e.object.metadata.namespace));
      } else {
        for (const k of await this.#selectedKeys(r, opts.namespace, sel, from - 1)) selected.add(k);
      }
    }
    w.kvWatch = await this.#kv.watch(prefixOf(r, opts.namespace), from, {
      event: (e) => {
        const ev = this.#toWatchEvent<R>(r, e);
        if (ev === undefined) return;
        if (!selective) {
          if (sel(ev.object)) w.push(ev);
          return;
        }
        const was = selected.has(e.key);
        const now = ev.type !== 'DELETED' && sel(ev.object);
        if (now) selected.add(e.key);
        else selected.delete(e.key);
        if (ev.type === 'DELETED') {
          if (was) w.push(ev);
        } else if (now) {
          w.push(was ? ev : { ...ev, type: 'ADDED' });
        } else if (was) {
          w.push({ ...ev, type: 'DELETED' });
        }
      },
      error: (err) => {
        w.push(
          err instanceof VipmeshError ? err : apiError('VIPMESH_STORE_UNAVAILABLE', err.message, {}, err),
        );
      },
    });
    return w;
  }

  /** The keys of the objects `sel` selects at `revision` (`VIPMESH_API_GONE` once it is compacted). */
  async #selectedKeys(
    r: ResourceInfo,
    namespace: string | undefined,
    sel: Matcher,
    revision: number,
  ): Promise<string[]> {
    const prefix = prefixOf(r, namespace);
    const out: string[] = [];
    let start = prefix;
    for (;;) {
      const page = await this.#kv.listPage(prefix, { limit: FILL_PAGE_SIZE, start, revision });
      for (const p of page.pairs) {
        let o: KubeObject;
        try {
          o = this.#decode(r, p);
        } catch {
          continue; // not an object of ours: never in a watch either
        }
        if (sel(o)) out.push(p.key);
      }
      const last = page.pairs.at(-1);
      if (!page.more || last === undefined) return out;
      start = `${last.key}\0`;
    }
  }

  /** Close the datastore connection. */
  async close(): Promise<void> {
    await this.#kv.close();
  }

  #toWatchEvent<R extends ResourceName>(
    r: ResourceInfo,
    e: KvEvent,
  ): WatchEvent<ResourceTypes[R]> | undefined {
    let object: ResourceTypes[R];
    try {
      object = this.#decode<R>(r, {
        key: e.key,
        value: e.value,
        modRevision: e.modRevision,
        createRevision: 0,
      });
    } catch {
      return undefined; // not an object of ours (written by another tool under /registry): skip it
    }
    return { type: e.type === 'delete' ? 'DELETED' : e.created ? 'ADDED' : 'MODIFIED', object };
  }

  /** Write the merge of `o` into the stored object; {@link GUARD_MOVED} when `guard` moved first. */
  async #replace<R extends ResourceName>(
    r: ResourceInfo,
    o: KubeObject,
    wo: WriteOptions,
    merge: (cur: KubeObject) => KubeObject,
    guard?: KvGuard,
  ): Promise<ResourceTypes[R] | typeof GUARD_MOVED> {
    const name = o.metadata.name;
    const key = keyOf(r, name, o.metadata.namespace);
    const want = o.metadata.resourceVersion;
    for (;;) {
      const pair = await this.#kv.get(key);
      if (pair === undefined) throw notFound(r, name);
      checkVersion(r, name, want, pair.modRevision);
      const cur = this.#decode(r, pair);
      const next = merge(cur);
      if (stripVolatile(next) === stripVolatile(cur)) return cur as ResourceTypes[R];
      if (wo.dryRun === true) {
        next.metadata.resourceVersion = cur.metadata.resourceVersion;
        return next as ResourceTypes[R];
      }
      const res = await this.#kv.put(key, Buffer.from(stripVolatile(next)), pair.modRevision, guard);
      if (res.ok) {
        next.metadata.resourceVersion = String(res.revision);
        return next as ResourceTypes[R];
      }
      if (guard !== undefined && res.current?.modRevision === pair.modRevision) return GUARD_MOVED;
      // Someone wrote in between: with a resourceVersion that is a conflict; without, try again.
      if (want !== undefined) throw conflict(r, name);
    }
  }

  /** Check kind/apiVersion, default the namespace, validate, and deep-copy. */
  #prepare(r: ResourceInfo, obj: unknown, wo: WriteOptions, validate = true): KubeObject {
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
      throw apiError('VIPMESH_API_BAD_REQUEST', `a ${r.kind} must be a JSON object`);
    }
    const o = structuredClone(obj) as KubeObject;
    o.apiVersion ??= apiVersionOf(r);
    o.kind ??= r.kind;
    if (o.kind !== r.kind || o.apiVersion !== apiVersionOf(r)) {
      throw apiError(
        'VIPMESH_API_BAD_REQUEST',
        `expected ${apiVersionOf(r)} ${r.kind}, got ${String(o.apiVersion)} ${String(o.kind)}`,
      );
    }
    if (typeof o.metadata !== 'object' || o.metadata === null) o.metadata = {} as KubeObject['metadata'];
    const problems = checkMeta(r, o.metadata.name, o.metadata.namespace);
    if (r.namespaced) o.metadata.namespace ??= 'default';
    else delete o.metadata.namespace;
    if (
      validate &&
      problems.length === 0 &&
      this.#validate !== undefined &&
      this.#validated.has(r.resource)
    ) {
      let found = this.#validate(o);
      if (
        wo.fieldValidation !== undefined &&
        handleUnknownFields(o, found, wo.fieldValidation, wo.warnings, r)
      ) {
        found = this.#validate(o);
      }
      problems.push(...found);
    }
    if (problems.length > 0) throw invalidError(r.kind, String(o.metadata.name ?? ''), problems);
    return o;
  }

  /**
   * {@link ResourceStoreOptions.validateSet} on `o` and every other stored object of `setResources`. Returns
   * the guard the write must carry: the set's guard key as it was before the set was read, so a write
   * of the set by anyone (any server on the datastore) between this check and ours fails ours.
   */
  async #checkSet(r: ResourceInfo, o: KubeObject): Promise<KvGuard | undefined> {
    if (this.#validateSet === undefined || !this.#setResources.includes(r.resource)) return undefined;
    const guard: KvGuard = {
      key: SET_GUARD_KEY,
      expect: (await this.#kv.get(SET_GUARD_KEY))?.modRevision ?? 0,
    };
    const self = keyOf(r, o.metadata.name, o.metadata.namespace);
    const existing: KubeObject[] = [];
    for (const name of this.#setResources) {
      const other = RESOURCES[name];
      const { pairs } = await this.#kv.list(prefixOf(other));
      for (const p of pairs) if (p.key !== self) existing.push(this.#decode(other, p));
    }
    const problems = this.#validateSet(o, existing);
    if (problems.length > 0) throw invalidError(r.kind, o.metadata.name, problems);
    return guard;
  }

  /** After the set's guard moved under a write: check again, or give up with a 409 after many tries. */
  #guardRetry(r: ResourceInfo, name: string, attempt: number): void {
    if (attempt < MAX_GUARD_RETRIES) return;
    throw apiError(
      'VIPMESH_API_CONFLICT',
      `${r.resource} "${name}": other writes of address pools kept coming first; try again`,
      { kind: r.kind, name },
    );
  }

  #decode<R extends ResourceName>(r: ResourceInfo, pair: KvPair): ResourceTypes[R] {
    const o = JSON.parse(pair.value.toString()) as KubeObject;
    if (typeof o !== 'object' || o === null || typeof o.metadata !== 'object') {
      throw new VipmeshError('VIPMESH_STORE_CORRUPT', `${pair.key} does not hold an object`);
    }
    o.apiVersion = apiVersionOf(r);
    o.kind = r.kind;
    o.metadata.resourceVersion = String(pair.modRevision);
    return o as ResourceTypes[R];
  }

  async #count<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      const v = await fn();
      this.#ops?.inc({ op, result: 'ok' });
      return v;
    } catch (err) {
      this.#ops?.inc({ op, result: err instanceof VipmeshError ? err.code : 'error' });
      throw err;
    }
  }
}

/** `services` or `ipaddresspools.metallb.io`: how kube-apiserver names a resource in its messages. */
function qualified(r: ResourceInfo): string {
  return r.group === '' ? r.resource : `${r.resource}.${r.group}`;
}

/** Status details as kube-apiserver fills them: the name, the group, and the kind as the resource plural. */
function details(r: ResourceInfo, name: string): Record<string, string> {
  return { name, kind: r.resource, ...(r.group === '' ? {} : { group: r.group }) };
}

function notFound(r: ResourceInfo, name: string): VipmeshError {
  return apiError('VIPMESH_API_NOT_FOUND', `${qualified(r)} "${name}" not found`, details(r, name));
}

function alreadyExists(r: ResourceInfo, name: string): VipmeshError {
  return apiError('VIPMESH_API_ALREADY_EXISTS', `${qualified(r)} "${name}" already exists`, details(r, name));
}

function conflict(r: ResourceInfo, name: string): VipmeshError {
  return apiError(
    'VIPMESH_API_CONFLICT',
    `Operation cannot be fulfilled on ${qualified(r)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    details(r, name),
  );
}

function checkVersion(r: ResourceInfo, name: string, want: string | undefined, have: number): void {
  if (want !== undefined && want !== '' && want !== String(have)) throw conflict(r, name);
}
