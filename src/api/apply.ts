/**
 * `vipmesh apply -f`: read YAML (or JSON) documents, find each one's resource, and create or update it so
 * the server holds what the file says (kubectl's client-side apply, without the last-applied annotation:
 * the file's object replaces the stored one, whose status is kept).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { isVipmeshError, VipmeshError } from '../errors.js';
import { MAX_OBJECT_DEPTH, valueTooDeep, yamlTooDeep } from '../util/yaml-depth.js';
import {
  apiVersionOf,
  type KubeObject,
  RESOURCES,
  type ResourceInfo,
  type ResourceName,
  type ResourceTypes,
  resourceFor,
} from './types.js';

/** What apply needs of a client (the ApiClient, or a ResourceStore adapter in tests). */
interface ApplyTarget {
  get<R extends ResourceName>(resource: R, name: string, namespace?: string): Promise<ResourceTypes[R]>;
  create<R extends ResourceName>(resource: R, obj: KubeObject): Promise<ResourceTypes[R]>;
  update<R extends ResourceName>(resource: R, obj: KubeObject): Promise<ResourceTypes[R]>;
}

/** One object read from a file, with where it came from. */
interface SourceObject {
  r: ResourceInfo;
  obj: KubeObject;
  source: string;
}

/** What happened to one object: `service/web created`. */
interface ApplyOutcome {
  resource: ResourceName;
  name: string;
  namespace?: string;
  action: 'created' | 'configured' | 'unchanged';
}

function badInput(message: string, details: Record<string, unknown> = {}): VipmeshError {
  return new VipmeshError('VIPMESH_CLI_BAD_INPUT', message, { details });
}

/** The files `-f` names: a file, `-` (stdin, read by the caller), or every .yaml/.yml/.json in a directory. */
function expandPaths(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (p === '-') {
      out.push(p);
      continue;
    }
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch (err) {
      throw badInput(`${p}: cannot read: ${(err as Error).message}`, { file: p });
    }
    if (st.isDirectory()) {
      for (const name of readdirSync(p).sort()) {
        if (/\.(ya?ml|json)$/.test(name)) out.push(join(p, name));
      }
    } else {
      out.push(p);
    }
  }
  return out;
}

/**
 * Parse the documents of one file into objects of known kinds (a `List` is unpacked). Namespaced objects
 * without a namespace get `defaultNamespace`. `VIPMESH_CLI_BAD_INPUT` names the file (and line) on error.
 */
export function parseObjects(text: string, source: string, defaultNamespace = 'default'): SourceObject[] {
  const out: SourceObject[] = [];
  const tooDeep = `nests maps and lists deeper than ${MAX_OBJECT_DEPTH} levels (the API's limit); refused`;
  // Checked before parsing: composing a document thousands of levels deep overflows the stack. A List
  // adds two levels around the objects the limit applies to.
  const deep = yamlTooDeep(text, MAX_OBJECT_DEPTH + 2);
  if (deep !== undefined)
    throw badInput(`${source}:${deep.line}: ${tooDeep}`, { file: source, line: deep.line });
  const docs = parseAllDocuments(text);
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    if (doc.errors.length > 0) {
      const e = doc.errors[0]!;
      throw badInput(`${source}:${e.linePos?.[0]?.line ?? 0}: not valid YAML: ${e.message}`, {
        file: source,
      });
    }
    let v: unknown;
    try {
      v = doc.toJS();
    } catch (err) {
      // e.g. an alias to an anchor that does not exist
      throw badInput(`${source}: not valid YAML: ${(err as Error).message}`, { file: source });
    }
    if (v === null || v === undefined) continue;
    const line =
      doc.contents?.range?.[0] === undefined ? 0 : text.slice(0, doc.contents.range[0]).split('\n').length;
    const items = isList(v) ? v.items : [v];
    for (const item of items) {
      if (valueTooDeep(item)) throw badInput(`${source}:${line}: ${tooDeep}`, { file: source, line });
      out.push(toSource(item, `${source}:${line}`, defaultNamespace));
    }
  }
  return out;
}

function isList(v: unknown): v is { items: unknown[] } {
  const o = v as { kind?: unknown; items?: unknown };
  return (
    typeof o === 'object' && typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)
  );
}

function toSource(item: unknown, source: string, defaultNamespace: string): SourceObject {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    throw badInput(`${source}: a document must be an object with apiVersion and kind`, { file: source });
  }
  const obj = item as KubeObject;
  const r = typeof obj.kind === 'string' ? resourceFor(obj.kind) : undefined;
  if (r === undefined || r.kind !== obj.kind) {
    throw badInput(
      `${source}: unknown kind "${String(obj.kind)}" (known: ${Object.values(RESOURCES)
        .map((k) => k.kind)
        .join(', ')})`,
      {
        file: source,
      },
    );
  }
  if (obj.apiVersion !== apiVersionOf(r)) {
    throw badInput(
      `${source}: ${r.kind} must have apiVersion ${apiVersionOf(r)}, not ${String(obj.apiVersion)}`,
      { file: source },
    );
  }
  if (typeof obj.metadata !== 'object' || obj.metadata === null) obj.metadata = {} as KubeObject['metadata'];
  if (r.namespaced) obj.metadata.namespace ??= defaultNamespace;
  return { r, obj, source };
}

/** Read and parse every file (`-` reads `stdin`). Nothing is sent until every file has parsed. */
export function readObjects(paths: string[], defaultNamespace: string, stdin?: () => string): SourceObject[] {
  const out: SourceObject[] = [];
  for (const file of expandPaths(paths)) {
    let text: string;
    try {
      text = file === '-' ? (stdin?.() ?? readFileSync(0, 'utf8')) : readFileSync(file, 'utf8');
    } catch (err) {
      throw badInput(`${file}: cannot read: ${(err as Error).message}`, { file });
    }
    out.push(...parseObjects(text, file === '-' ? '<stdin>' : file, defaultNamespace));
  }
  return out;
}

/** Create or update one object; retried on a conflict with a concurrent writer. */
export async function applyObject(target: ApplyTarget, src: SourceObject): Promise<ApplyOutcome> {
  const { r, obj } = src;
  const name = obj.metadata.name;
  const ns = obj.metadata.namespace;
  const base = { resource: r.resource, name, ...(ns === undefined ? {} : { namespace: ns }) };
  for (let attempt = 0; ; attempt++) {
    let cur: KubeObject | undefined;
    try {
      cur = await target.get(r.resource, name, ns);
    } catch (err) {
      if (!isVipmeshError(err, 'VIPMESH_API_NOT_FOUND')) throw err;
    }
    try {
      if (cur === undefined) {
        await target.create(r.resource, obj);
        return { ...base, action: 'created' };
      }
      const rv = cur.metadata.resourceVersion;
      const next = {
        ...obj,
        metadata: { ...obj.metadata, ...(rv === undefined ? {} : { resourceVersion: rv }) },
      };
      const res = await target.update(r.resource, next);
      return { ...base, action: res.metadata.resourceVersion === rv ? 'unchanged' : 'configured' };
    } catch (err) {
      const raced =
        isVipmeshError(err, 'VIPMESH_API_CONFLICT') || isVipmeshError(err, 'VIPMESH_API_ALREADY_EXISTS');
      if (!raced || attempt >= 4) throw err;
    }
  }
}

/** kubectl's `service/web created`. */
export function outcomeLine(o: ApplyOutcome): string {
  return `${typeName(o.resource)}/${o.name} ${o.action}`;
}

/** kubectl's type prefix: `service`, `ipaddresspool.metallb.io`. */
export function typeName(resource: ResourceName): string {
  const r = resourceFor(resource);
  if (r === undefined) return resource;
  return r.group === '' ? r.kind.toLowerCase() : `${r.kind.toLowerCase()}.${r.group}`;
}
