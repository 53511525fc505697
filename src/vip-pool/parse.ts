import {
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseAllDocuments,
  parseDocument,
  Scalar,
} from 'yaml';
import { MAX_OBJECT_DEPTH, valueTooDeep, yamlTooDeep } from '../util/yaml-depth.js';
import { isObj, type Obj } from './checker.js';
import { Codes } from './codes.js';
import { type Decoded, decodeObject } from './decode.js';
import { type FieldPath, formatPath } from './path.js';
import { poolSetProblems } from './pools.js';
import type { AddressPool, ConfigProblem } from './types.js';

/** One object read from a YAML file, with where it came from and (when valid) what it means. */
export interface ParsedObject {
  file: string;
  /** 1-based line where the object starts. */
  line: number;
  apiVersion: string;
  kind: string;
  name: string;
  /** metadata.namespace, or empty. */
  namespace: string;
  /** The object as plain JSON. */
  object: Obj;
  /** The normalized value; absent when the object has problems. */
  decoded?: Decoded;
}

type LineOf = (path: FieldPath) => number;
const lineIndex = new WeakMap<ParsedObject, LineOf>();

/** The line of a field of `obj` (or of its nearest enclosing field that exists in the file). */
export function lineOfField(obj: ParsedObject, path: FieldPath): number {
  return lineIndex.get(obj)?.(path) ?? obj.line;
}

function firstLine(msg: string): string {
  return msg.split('\n')[0]!.trim();
}

/** Index every map key and list item of `node` by its formatted path. */
function indexLines(
  node: unknown,
  path: FieldPath,
  line: (offset: number) => number,
  out: Map<string, number>,
  depth = 0,
): void {
  if (depth > 48) return;
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      if (typeof key !== 'string' && typeof key !== 'number') continue;
      const p = [...path, String(key)];
      const range = (pair.key as Node).range;
      if (range) out.set(formatPath(p), line(range[0]));
      indexLines(pair.value, p, line, out, depth + 1);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      const p = [...path, i];
      const range = (item as Node | null)?.range;
      if (range) out.set(formatPath(p), line(range[0]));
      indexLines(item, p, line, out, depth + 1);
    });
  }
}

/** Lines inside a legacy ConfigMap's `data.config: |` block, offset to the outer file. */
function indexBlock(
  node: unknown,
  base: FieldPath,
  outerLine: (offset: number) => number,
  out: Map<string, number>,
): void {
  if (!isScalar(node) || typeof node.value !== 'string' || !node.range) return;
  if (node.type !== Scalar.BLOCK_LITERAL && node.type !== Scalar.BLOCK_FOLDED) return;
  const header = outerLine(node.range[0]);
  const lc = new LineCounter();
  const inner = parseDocument(node.value, { lineCounter: lc, prettyErrors: false });
  // The block does not parse: its problem (the decoder reports it on the block) is on the failing line.
  const bad = inner.errors[0];
  if (bad !== undefined) out.set(formatPath(base), header + lc.linePos(bad.pos[0]).line);
  indexLines(inner.contents, base, (o) => header + lc.linePos(o).line, out);
}

function makeLineOf(lines: Map<string, number>, prefix: FieldPath, fallback: number): LineOf {
  return (path) => {
    for (let n = path.length; n >= 0; n--) {
      const hit = lines.get(formatPath([...prefix, ...path.slice(0, n)]));
      if (hit !== undefined) return hit;
    }
    return fallback;
  };
}

function str(o: Obj, k: string): string {
  return typeof o[k] === 'string' ? (o[k] as string) : '';
}

/**
 * Parse one or many YAML documents (a `kind: List` is unpacked) and validate every object. Each object
 * and each problem carries its file and line. Never throws, whatever the input.
 */
export function parseDocuments(
  text: string,
  file: string,
): { objects: ParsedObject[]; problems: ConfigProblem[] } {
  const objects: ParsedObject[] = [];
  const problems: ConfigProblem[] = [];
  const at = (line: number, code: string, message: string, kind = '', name = '', path = ''): void => {
    problems.push({ file, line, kind, name, path, code, message });
  };
  try {
    // A List adds two levels (the List map and its items) around objects the limit applies to.
    const deep = yamlTooDeep(text, MAX_OBJECT_DEPTH + 2);
    if (deep !== undefined) {
      at(
        deep.line,
        Codes.YAML_INVALID,
        `nests maps and lists deeper than ${MAX_OBJECT_DEPTH} levels; refused`,
      );
      return { objects, problems };
    }
    const lc = new LineCounter();
    const line = (offset: number): number => lc.linePos(offset).line;
    const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
    for (const doc of docs) {
      if (doc.errors.length > 0) {
        for (const e of doc.errors)
          at(line(e.pos[0]), Codes.YAML_INVALID, `not valid YAML: ${firstLine(e.message)}`);
        continue;
      }
      const start = doc.contents?.range ? line(doc.contents.range[0]) : 1;
      let value: unknown;
      try {
        value = doc.toJS({ maxAliasCount: 100 });
      } catch (err) {
        at(start, Codes.YAML_INVALID, `not valid YAML: ${firstLine(String((err as Error)?.message ?? err))}`);
        continue;
      }
      if (value === null || value === undefined) continue;
      const lines = new Map<string, number>();
      indexLines(doc.contents, [], line, lines);
      const items: Array<{ value: unknown; prefix: FieldPath }> = [];
      if (isObj(value) && value['kind'] === 'List' && Array.isArray(value['items'])) {
        value['items'].forEach((v, i) => {
          items.push({ value: v, prefix: ['items', i] });
        });
      } else {
        items.push({ value, prefix: [] });
      }
      for (const item of items) {
        const objLine = lines.get(formatPath(item.prefix)) ?? start;
        if (!isObj(item.value)) {
          at(objLine, Codes.YAML_INVALID, 'a document must be a map with apiVersion, kind and metadata');
          continue;
        }
        const o = item.value;
        if (valueTooDeep(o)) {
          at(
            objLine,
            Codes.YAML_INVALID,
            `nests maps and lists deeper than ${MAX_OBJECT_DEPTH} levels; refused`,
            str(o, 'kind'),
            isObj(o['metadata']) ? str(o['metadata'], 'name') : '',
          );
          continue;
        }
        if (o['kind'] === 'ConfigMap') {
          indexBlock(
            doc.getIn([...item.prefix, 'data', 'config'], true),
            [...item.prefix, 'data', 'config'],
            line,
            lines,
          );
        }
        const meta = isObj(o['metadata']) ? o['metadata'] : {};
        const parsed: ParsedObject = {
          file,
          line: objLine,
          apiVersion: str(o, 'apiVersion'),
          kind: str(o, 'kind'),
          name: str(meta, 'name'),
          namespace: str(meta, 'namespace'),
          object: o,
        };
        const lineOf = makeLineOf(lines, item.prefix, objLine);
        lineIndex.set(parsed, lineOf);
        const r = decodeObject(o);
        if (r.decoded !== undefined) parsed.decoded = r.decoded;
        for (const i of r.issues) at(lineOf(i.path), i.code, i.message, r.kind, r.name, formatPath(i.path));
        objects.push(parsed);
      }
    }
  } catch (err) {
    // The yaml package is not expected to throw on any input; if it does, report it as bad YAML.
    at(1, Codes.YAML_INVALID, `not valid YAML: ${firstLine(String((err as Error)?.message ?? err))}`);
  }
  return { objects, problems };
}

/** A pool with the object and field path it came from. */
interface SourcedPool {
  pool: AddressPool;
  object: ParsedObject;
  /** Path of the pool inside the object: [] for an IPAddressPool, data.config.address-pools[i] for legacy. */
  base: FieldPath;
  /** Path of the `addresses` list, relative to the object. */
  addresses: FieldPath;
}

/** Every valid pool of `objects`, in order, with its source. */
function sourcedPools(objects: readonly ParsedObject[]): SourcedPool[] {
  const out: SourcedPool[] = [];
  for (const object of objects) {
    const d = object.decoded;
    if (d?.kind === 'IPAddressPool')
      out.push({ pool: d.pool, object, base: [], addresses: ['spec', 'addresses'] });
    if (d?.kind === 'ConfigMap') {
      d.pools.forEach((pool, i) => {
        const base = ['data', 'config', 'address-pools', i];
        out.push({ pool, object, base, addresses: [...base, 'addresses'] });
      });
    }
  }
  return out;
}

/** Problems between pools (duplicate names, overlapping addresses), located in the files. */
export function checkPools(objects: readonly ParsedObject[]): ConfigProblem[] {
  return poolProblems(objects).problems;
}

/** {@link checkPools}, plus the sourced pools and the indexes of those with a problem. */
export function poolProblems(objects: readonly ParsedObject[]): {
  pools: SourcedPool[];
  problems: ConfigProblem[];
  bad: Set<number>;
} {
  const pools = sourcedPools(objects);
  const bad = new Set<number>();
  const problems = poolSetProblems(pools.map((p) => p.pool)).map((p) => {
    bad.add(p.pool);
    const src = pools[p.pool]!;
    const namePath = src.base.length > 0 ? [...src.base, 'name'] : ['metadata', 'name'];
    const path = p.entry === undefined ? namePath : [...src.addresses, p.entry];
    return {
      file: src.object.file,
      line: lineOfField(src.object, path),
      kind: src.object.kind,
      name: src.object.name,
      path: formatPath(path),
      code: p.code,
      message: p.message,
    };
  });
  return { pools, problems, bad };
}

/** `pools.yaml:12 IPAddressPool/office spec.addresses[1]: range start 10.0.0.9 is after end 10.0.0.5`. */
export function formatProblem(p: ConfigProblem): string {
  const loc = p.line > 0 ? `${p.file}:${p.line}` : p.file;
  const obj = p.kind === '' ? '' : `${p.kind}/${p.name === '' ? '<unnamed>' : p.name}`;
  const what = [obj, p.path].filter((s) => s !== '').join(' ');
  const head = [loc, what].filter((s) => s !== '').join(' ');
  return head === '' ? p.message : `${head}: ${p.message}`;
}
