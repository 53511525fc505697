/**
 * Strict JSON for request bodies: a nesting limit (checked before anything recursive touches the text) and
 * duplicate keys refused, as kube-apiserver's strict decoding does. `JSON.parse` alone keeps the last of two
 * equal keys, and accepts nesting that later overflows the stack of whatever walks the object.
 */
import { MAX_OBJECT_DEPTH } from '../util/yaml-depth.js';
import { apiError } from './status.js';

/** Deepest nesting of maps and lists a request body may have (YAML files have the same limit). */
export const MAX_JSON_DEPTH = MAX_OBJECT_DEPTH;

interface Frame {
  object: boolean;
  keys: Set<string>;
  /** The key (object) or index (list) of the value being read now. */
  at: string | number;
  expectKey: boolean;
}

function pathOf(stack: readonly Frame[]): string {
  let out = '';
  for (const f of stack) {
    if (typeof f.at === 'number') out += `[${f.at}]`;
    else if (f.at !== '')
      out += /^[A-Za-z_][A-Za-z0-9_-]*$/.test(f.at) ? `.${f.at}` : `[${JSON.stringify(f.at)}]`;
  }
  return out === '' ? '.' : out;
}

/**
 * Parse `text` as JSON; `VIPMESH_API_BAD_REQUEST` (400) when it is not JSON, nests deeper than `maxDepth`,
 * or has a key twice in one object (the message names where) — unless `onDuplicate` is given: then each
 * duplicate's path is passed to it and the last value wins, as `JSON.parse` keeps it.
 */
export function parseStrictJson(
  text: string,
  maxDepth = MAX_JSON_DEPTH,
  onDuplicate?: (path: string) => void,
): unknown {
  const stack: Frame[] = [];
  let duplicate: string | undefined;
  const duplicates: string[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22 /* " */) {
      const start = i;
      for (i++; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c === 0x5c /* \ */) i++;
        else if (c === 0x22) break;
      }
      const top = stack.at(-1);
      if (top?.object === true && top.expectKey && duplicate === undefined) {
        let key: string;
        try {
          key = JSON.parse(text.slice(start, i + 1)) as string;
        } catch {
          break; // not JSON: JSON.parse below says where
        }
        if (top.keys.has(key)) {
          top.at = key;
          if (onDuplicate === undefined) duplicate = pathOf(stack);
          else duplicates.push(pathOf(stack).replace(/^\./, ''));
        }
        top.keys.add(key);
        top.at = key;
        top.expectKey = false;
      }
    } else if (ch === 0x7b /* { */ || ch === 0x5b /* [ */) {
      if (stack.length >= maxDepth) {
        throw apiError(
          'VIPMESH_API_BAD_REQUEST',
          `the request body nests deeper than ${maxDepth} levels (at ${pathOf(stack)})`,
        );
      }
      const object = ch === 0x7b;
      stack.push({ object, keys: new Set(), at: object ? '' : 0, expectKey: object });
    } else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      stack.pop();
    } else if (ch === 0x2c /* , */) {
      const top = stack.at(-1);
      if (top?.object === true) top.expectKey = true;
      else if (top !== undefined && typeof top.at === 'number') top.at++;
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw apiError('VIPMESH_API_BAD_REQUEST', `the request body is not JSON: ${(err as Error).message}`);
  }
  for (const d of duplicates) onDuplicate?.(d);
  if (duplicate !== undefined) {
    throw apiError(
      'VIPMESH_API_BAD_REQUEST',
      `strict decoding error: duplicate field "${duplicate.replace(/^\./, '')}"`,
    );
  }
  return value;
}
