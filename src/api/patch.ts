/**
 * The three patch formats of the Kubernetes API, as pure functions of (object, patch) -> new object:
 * JSON Patch (RFC 6902, `application/json-patch+json`), JSON Merge Patch (RFC 7386,
 * `application/merge-patch+json`) and strategic merge patch (`application/strategic-merge-patch+json`, what
 * `kubectl apply` sends for built-in kinds). None of them touches its inputs.
 */
import { canonicalJson } from './meta.js';
import { apiError } from './status.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function patchError(message: string) {
  return apiError('VIPMESH_API_INVALID', message);
}

/** `/spec/ports/0` -> `['spec', 'ports', '0']` (RFC 6901: `~1` is `/`, `~0` is `~`). */
function pointer(p: unknown, op: string): string[] {
  if (typeof p !== 'string' || (p !== '' && !p.startsWith('/'))) {
    throw patchError(`json patch: ${op}: path ${JSON.stringify(p)} is not a JSON pointer`);
  }
  return p === ''
    ? []
    : p
        .slice(1)
        .split('/')
        .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
}

/** The container holding the last token of `path`, and that token. */
function parentOf(doc: Json, path: string[], raw: string): { parent: Obj | Json[]; key: string } {
  let cur: Json = doc;
  for (const seg of path.slice(0, -1)) {
    const next: Json | undefined = Array.isArray(cur)
      ? cur[index(cur, seg, raw, false)]
      : isObj(cur)
        ? cur[seg]
        : undefined;
    if (next === undefined) throw patchError(`json patch: path ${raw}: ${seg} does not exist`);
    cur = next;
  }
  if (!Array.isArray(cur) && !isObj(cur))
    throw patchError(`json patch: path ${raw}: not inside a map or a list`);
  return { parent: cur, key: path.at(-1)! };
}

function index(list: Json[], seg: string, raw: string, adding: boolean): number {
  if (adding && seg === '-') return list.length;
  if (!/^(0|[1-9]\d*)$/.test(seg)) throw patchError(`json patch: path ${raw}: "${seg}" is not a list index`);
  const i = Number(seg);
  if (i > list.length || (!adding && i === list.length)) {
    throw patchError(`json patch: path ${raw}: index ${i} is out of range`);
  }
  return i;
}

function getAt(doc: Json, path: string[], raw: string): Json {
  if (path.length === 0) return doc;
  const { parent, key } = parentOf(doc, path, raw);
  const v = Array.isArray(parent) ? parent[index(parent, key, raw, false)] : parent[key];
  if (v === undefined) throw patchError(`json patch: path ${raw} does not exist`);
  return v;
}

function addAt(doc: Json, path: string[], value: Json, raw: string): Json {
  if (path.length === 0) return value;
  const { parent, key } = parentOf(doc, path, raw);
  if (Array.isArray(parent)) parent.splice(index(parent, key, raw, true), 0, value);
  else parent[key] = value;
  return doc;
}

function removeAt(doc: Json, path: string[], raw: string): Json {
  if (path.length === 0) throw patchError('json patch: remove: cannot remove the whole object');
  const { parent, key } = parentOf(doc, path, raw);
  if (Array.isArray(parent)) parent.splice(index(parent, key, raw, false), 1);
  else if (Object.hasOwn(parent, key)) delete parent[key];
  else throw patchError(`json patch: remove: path ${raw} does not exist`);
  return doc;
}

/** Apply an RFC 6902 JSON Patch (a list of operations) to `doc`. */
export function applyJsonPatch(doc: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch)) throw patchError('json patch: the patch must be a list of operations');
  let out = structuredClone(doc) as Json;
  patch.forEach((raw: unknown, i) => {
    if (!isObj(raw)) throw patchError(`json patch: operation ${i} is not a map`);
    const op = String(raw['op']);
    const rawPath = raw['path'];
    const path = pointer(rawPath, op);
    const value = raw['value'];
    const needValue = op === 'add' || op === 'replace' || op === 'test';
    if (needValue && value === undefined) throw patchError(`json patch: ${op} ${String(rawPath)}: no value`);
    switch (op) {
      case 'add':
        out = addAt(out, path, structuredClone(value!), String(rawPath));
        break;
      case 'remove':
        out = removeAt(out, path, String(rawPath));
        break;
      case 'replace':
        getAt(out, path, String(rawPath));
        out = path.length === 0 ? structuredClone(value!) : removeAt(out, path, String(rawPath));
        if (path.length > 0) out = addAt(out, path, structuredClone(value!), String(rawPath));
        break;
      case 'move':
      case 'copy': {
        const fromRaw = raw['from'];
        const from = pointer(fromRaw, op);
        if (op === 'move' && path.length > from.length && from.every((s, j) => path[j] === s)) {
          throw patchError(`json patch: move: ${String(fromRaw)} cannot move into itself`);
        }
        const v = structuredClone(getAt(out, from, String(fromRaw)));
        if (op === 'move') out = removeAt(out, from, String(fromRaw));
        out = addAt(out, path, v, String(rawPath));
        break;
      }
      case 'test':
        if (canonicalJson(getAt(out, path, String(rawPath))) !== canonicalJson(value)) {
          throw patchError(`json patch: test ${String(rawPath)}: the value differs`);
        }
        break;
      default:
        throw patchError(`json patch: operation ${i}: unknown op ${JSON.stringify(raw['op'])}`);
    }
  });
  return out;
}

/** Apply an RFC 7386 JSON Merge Patch: maps merge, `null` deletes, anything else (lists too) replaces. */
export function applyMergePatch(doc: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return structuredClone(patch);
  const out: Obj = isObj(doc) ? (structuredClone(doc) as Obj) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v) as Json;
  }
  return out;
}

/**
 * How a list field merges under a strategic merge patch: by a key field (`spec.ports` by `port`), as a set
 * of scalars, or (absent here) replaced whole. Paths are dotted field names without list indexes.
 */
export type MergeKeys = Readonly<Record<string, string | { set: true }>>;

/** The merge keys of the fields vipmesh serves, per kind, as Kubernetes declares them. */
export const STRATEGIC_MERGE_KEYS: Readonly<Record<string, MergeKeys>> = {
  Service: { 'spec.ports': 'port', 'status.conditions': 'type' },
  Node: {
    'status.conditions': 'type',
    'status.addresses': 'type',
    'spec.taints': 'key',
    'spec.podCIDRs': { set: true },
  },
  Namespace: { 'spec.finalizers': { set: true } },
  '*': { 'metadata.finalizers': { set: true }, 'metadata.ownerReferences': 'uid' },
};

/** The merge keys of one kind (its own and those every kind shares). */
export function mergeKeysOf(kind: string): MergeKeys {
  return { ...STRATEGIC_MERGE_KEYS['*'], ...STRATEGIC_MERGE_KEYS[kind] };
}

const ORDER = '$setElementOrder/';
const DELETE_FROM = '$deleteFromPrimitiveList/';
const RETAIN = '$retainKeys';

/**
 * Apply a strategic merge patch: a merge patch in which the lists named in `keys` merge element by element
 * (by their key field, or as sets), and the directives `$patch: replace|delete|merge`, `$retainKeys`,
 * `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>` are honoured. Other lists are replaced.
 */
export function applyStrategicMergePatch(doc: unknown, patch: unknown, keys: MergeKeys): unknown {
  if (!isObj(patch)) throw patchError('strategic merge patch: the patch must be a map');
  return mergeMap(isObj(doc) ? (structuredClone(doc) as Obj) : {}, patch, '', keys) ?? {};
}

function mergeMap(doc: Obj, patch: Obj, at: string, keys: MergeKeys): Obj | undefined {
  const directive = patch['$patch'];
  if (directive === 'delete') return undefined;
  let out: Obj = doc;
  if (directive === 'replace') {
    out = {};
  } else if (directive !== undefined && directive !== 'merge') {
    throw patchError(`strategic merge patch: ${at || '.'}: unknown $patch ${JSON.stringify(directive)}`);
  }
  const retain = patch[RETAIN];
  if (retain !== undefined) {
    if (!Array.isArray(retain)) throw patchError(`strategic merge patch: ${at}.${RETAIN} must be a list`);
    for (const k of Object.keys(out)) if (!retain.includes(k) && !Object.hasOwn(patch, k)) delete out[k];
  }
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === RETAIN || k.startsWith(ORDER) || k.startsWith(DELETE_FROM)) continue;
    const path = at === '' ? k : `${at}.${k}`;
    if (v === null) {
      delete out[k];
    } else if (isObj(v)) {
      const merged = mergeMap(isObj(out[k]) ? (out[k] as Obj) : {}, v, path, keys);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    } else if (Array.isArray(v) && keys[path] !== undefined) {
      out[k] = mergeList(Array.isArray(out[k]) ? (out[k] as Json[]) : [], v, path, keys);
    } else {
      out[k] = v;
    }
  }
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith(DELETE_FROM)) {
      const field = k.slice(DELETE_FROM.length);
      const gone = Array.isArray(v) ? v.map((x) => canonicalJson(x)) : [];
      if (Array.isArray(out[field])) {
        out[field] = (out[field] as Json[]).filter((x) => !gone.includes(canonicalJson(x)));
      }
    }
  }
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith(ORDER) && Array.isArray(v)) {
      const field = k.slice(ORDER.length);
      const path = at === '' ? field : `${at}.${field}`;
      if (Array.isArray(out[field])) out[field] = reorder(out[field] as Json[], v, keys[path]);
    }
  }
  return out;
}

function keyValue(x: Json, key: string | { set: true } | undefined): string {
  if (typeof key === 'string') return isObj(x) ? canonicalJson(x[key] ?? null) : canonicalJson(x);
  return canonicalJson(x);
}

function mergeList(cur: Json[], patch: Json[], path: string, keys: MergeKeys): Json[] {
  const key = keys[path]!;
  if (typeof key !== 'string') {
    const out = [...cur];
    for (const v of patch) if (!out.some((x) => canonicalJson(x) === canonicalJson(v))) out.push(v);
    return out;
  }
  if (patch.some((p) => isObj(p) && p['$patch'] === 'replace')) {
    return patch.filter((p) => !(isObj(p) && p['$patch'] === 'replace'));
  }
  const out = [...cur];
  for (const p of patch) {
    if (!isObj(p) || p[key] === undefined) {
      throw patchError(`strategic merge patch: ${path}: every element needs its merge key "${key}"`);
    }
    const i = out.findIndex((x) => keyValue(x, key) === keyValue(p, key));
    if (p['$patch'] === 'delete') {
      if (i >= 0) out.splice(i, 1);
    } else if (i >= 0) {
      const merged = mergeMap(isObj(out[i]) ? (out[i] as Obj) : {}, p, path, keys);
      if (merged === undefined) out.splice(i, 1);
      else out[i] = merged;
    } else {
      const fresh = mergeMap({}, p, path, keys);
      if (fresh !== undefined) out.push(fresh);
    }
  }
  return out;
}

/** `$setElementOrder`: the listed elements first, in that order; the rest keep their place after them. */
function reorder(list: Json[], order: Json[], key: string | { set: true } | undefined): Json[] {
  const wanted = order.map((o) => keyValue(o, key));
  const rank = (x: Json) => {
    const i = wanted.indexOf(keyValue(x, key));
    return i < 0 ? wanted.length : i;
  };
  return list
    .map((x, i) => ({ x, i }))
    .sort((a, b) => rank(a.x) - rank(b.x) || a.i - b.i)
    .map((e) => e.x);
}
