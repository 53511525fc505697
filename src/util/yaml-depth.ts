/**
 * Nesting limits for YAML input, measured before anything recursive touches it. The `yaml` package's
 * lexer and CST parser keep their own stack, but composing a document (and `toJS`) recurses, so a file
 * nested a few thousand levels deep overflows the call stack there. The limit is the API's own for JSON
 * bodies: anything deeper could not be sent or stored anyway.
 */
import { type CST, LineCounter, Parser } from 'yaml';

/** Deepest nesting of maps and lists an object may have (API bodies, YAML files). Real objects stay under 15. */
export const MAX_OBJECT_DEPTH = 100;

/** Where a YAML text first nests deeper than the limit. */
export interface TooDeep {
  /** 1-based line of the collection past the limit. */
  line: number;
  /** The limit that was passed. */
  maxDepth: number;
}

/**
 * The first place where `text` (any number of YAML documents) nests maps, lists or flow collections deeper
 * than `maxDepth`, or undefined. Iterative: safe on any input.
 */
export function yamlTooDeep(text: string, maxDepth = MAX_OBJECT_DEPTH): TooDeep | undefined {
  const stack: Array<{ token: CST.Token | undefined; depth: number }> = [];
  const lc = new LineCounter();
  for (const token of new Parser(lc.addNewLine).parse(text)) stack.push({ token, depth: 0 });
  while (stack.length > 0) {
    const { token, depth } = stack.pop()!;
    if (token === undefined) continue;
    switch (token.type) {
      case 'document':
        stack.push({ token: token.value, depth });
        break;
      case 'block-map':
      case 'block-seq':
      case 'flow-collection': {
        if (depth + 1 > maxDepth) return { line: lc.linePos(token.offset).line, maxDepth };
        for (const item of token.items) {
          const i = item as { key?: CST.Token | null; value?: CST.Token };
          if (i.key) stack.push({ token: i.key, depth: depth + 1 });
          stack.push({ token: i.value, depth: depth + 1 });
        }
        break;
      }
      default:
        break;
    }
  }
  return undefined;
}

/**
 * True when a plain value (the result of `toJS`, where aliases may have multiplied the depth the text
 * shows) nests deeper than `maxDepth`. Iterative.
 */
export function valueTooDeep(value: unknown, maxDepth = MAX_OBJECT_DEPTH): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth + 1 > maxDepth) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}
