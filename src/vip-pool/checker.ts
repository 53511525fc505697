import { Codes } from './codes.js';
import type { FieldPath } from './path.js';
import type { LabelSelector } from './types.js';

/** A problem found inside one object, before it is given a file and line. */
export interface Issue {
  path: FieldPath;
  code: string;
  message: string;
}

/** A plain (non-array) object. */
export type Obj = Record<string, unknown>;

/** True for a plain map (what YAML/JSON maps become). */
export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return `"${v.length > 40 ? `${v.slice(0, 40)}...` : v}"`;
  return String(v);
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** Which of Kubernetes' name rules a name follows. */
export type NameRule = 'dns1123-subdomain' | 'dns1123-label' | 'dns1035-label';

/**
 * The rule Kubernetes applies to `metadata.name` of a kind: Services are DNS-1035 labels (they become DNS
 * names), Namespaces DNS-1123 labels, everything else DNS-1123 subdomains.
 */
export function nameRuleOf(kind: string): NameRule {
  if (kind === 'Service') return 'dns1035-label';
  if (kind === 'Namespace') return 'dns1123-label';
  return 'dns1123-subdomain';
}

/** Why `name` breaks `rule`, or undefined when it follows it. The API and check-config say the same. */
export function nameProblem(name: string, rule: NameRule): string | undefined {
  const max = rule === 'dns1123-subdomain' ? 253 : 63;
  if (name.length > max) return `"${name.slice(0, 40)}..." must be no more than ${max} characters`;
  if (rule === 'dns1123-subdomain' && !DNS1123_SUBDOMAIN.test(name)) {
    return `"${name}" must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit`;
  }
  if (rule === 'dns1123-label' && !DNS1123_LABEL.test(name)) {
    return `"${name}" must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit`;
  }
  if (rule === 'dns1035-label' && !DNS1035_LABEL.test(name)) {
    return `"${name}" must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter and ending with a letter or digit`;
  }
  return undefined;
}

/** A selector as text that is equal for equal selectors (label keys and expression values sorted). */
function selectorKey(sel: LabelSelector): string {
  const labels = Object.entries(sel.matchLabels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const exprs = (sel.matchExpressions ?? []).map((e) => [e.key, e.operator, [...(e.values ?? [])].sort()]);
  return JSON.stringify([labels, exprs]);
}

/** Collects issues while reading fields of an untrusted value. Never throws. */
export class Checker {
  readonly issues: Issue[] = [];

  add(path: FieldPath, code: string, message: string): void {
    this.issues.push({ path, code, message });
  }

  /** The map at `obj[key]` (undefined when absent; an issue when required or not a map). */
  map(obj: Obj, key: string, path: FieldPath, required = false): Obj | undefined {
    const v = obj[key];
    if (v === undefined || v === null) {
      if (required) this.add([...path, key], Codes.FIELD_REQUIRED, 'required');
      return undefined;
    }
    if (!isObj(v)) {
      this.add([...path, key], Codes.FIELD_INVALID, `must be a map, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  /** The list at `obj[key]`. */
  list(obj: Obj, key: string, path: FieldPath, required = false): unknown[] | undefined {
    const v = obj[key];
    if (v === undefined || v === null) {
      if (required) this.add([...path, key], Codes.FIELD_REQUIRED, 'required');
      return undefined;
    }
    if (!Array.isArray(v)) {
      this.add([...path, key], Codes.FIELD_INVALID, `must be a list, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  /** The string at `obj[key]`. */
  str(obj: Obj, key: string, path: FieldPath, required = false): string | undefined {
    const v = obj[key];
    if (v === undefined || v === null) {
      if (required) this.add([...path, key], Codes.FIELD_REQUIRED, 'required');
      return undefined;
    }
    if (typeof v !== 'string') {
      this.add([...path, key], Codes.FIELD_INVALID, `must be a string, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  /** The boolean at `obj[key]`, or `dflt`. */
  bool(obj: Obj, key: string, path: FieldPath, dflt: boolean): boolean {
    const v = obj[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') {
      this.add([...path, key], Codes.FIELD_INVALID, `must be true or false, got ${describe(v)}`);
      return dflt;
    }
    return v;
  }

  /** Every element of the list at `obj[key]` that is a string (others are issues). */
  strings(obj: Obj, key: string, path: FieldPath): string[] {
    const out: string[] = [];
    const list = this.list(obj, key, path) ?? [];
    list.forEach((v, i) => {
      if (typeof v === 'string') out.push(v);
      else this.add([...path, key, i], Codes.FIELD_INVALID, `must be a string, got ${describe(v)}`);
    });
    return out;
  }

  /** Like {@link strings}, with an issue for every entry equal to an earlier one (as MetalLB refuses). */
  uniqueStrings(obj: Obj, key: string, path: FieldPath): string[] {
    const out = this.strings(obj, key, path);
    this.noDuplicates(out, out, [...path, key], (v) => `"${v}"`);
    return out;
  }

  /** An issue at `path[i]` for every `keys[i]` equal to an earlier one; `show` names the entry. */
  private noDuplicates<T>(
    keys: readonly string[],
    items: readonly T[],
    path: FieldPath,
    show: (v: T) => string,
  ) {
    keys.forEach((k, i) => {
      const first = keys.indexOf(k);
      if (first < i)
        this.add([...path, i], Codes.FIELD_INVALID, `${show(items[i]!)} is listed twice (also [${first}])`);
    });
  }

  /** An issue for every key of `obj` not in `allowed`. */
  onlyKeys(obj: Obj, allowed: readonly string[], path: FieldPath): void {
    for (const k of Object.keys(obj)) {
      if (!allowed.includes(k)) {
        this.add([...path, k], Codes.FIELD_UNKNOWN, `unknown field (expected one of: ${allowed.join(', ')})`);
      }
    }
  }

  /** A Kubernetes object name (a DNS-1123 subdomain unless `rule` says otherwise). */
  name(v: string, path: FieldPath, rule: NameRule = 'dns1123-subdomain'): void {
    const why = nameProblem(v, rule);
    if (why !== undefined) this.add(path, Codes.FIELD_INVALID, why);
  }

  /** A string-to-string map (labels, annotations). */
  stringMap(obj: Obj, key: string, path: FieldPath): Record<string, string> {
    const m = this.map(obj, key, path);
    const out: Record<string, string> = {};
    if (m === undefined) return out;
    for (const [k, v] of Object.entries(m)) {
      if (typeof v === 'string') out[k] = v;
      else
        this.add([...path, key, k], Codes.FIELD_INVALID, `must be a string, got ${describe(v)} (quote it)`);
    }
    return out;
  }

  /** A list of label selectors at `obj[key]`. */
  selectors(obj: Obj, key: string, path: FieldPath): LabelSelector[] {
    const out: LabelSelector[] = [];
    const seen = new Map<string, number>();
    const list = this.list(obj, key, path) ?? [];
    list.forEach((v, i) => {
      const p = [...path, key, i];
      if (!isObj(v)) {
        this.add(p, Codes.FIELD_INVALID, `must be a label selector map, got ${describe(v)}`);
        return;
      }
      const sel = this.selector(v, p);
      if (sel === undefined) return;
      // Two equal selectors are refused (by MetalLB too); an expression's values are compared sorted.
      const k = selectorKey(sel);
      const first = seen.get(k);
      if (first === undefined) seen.set(k, i);
      else this.add(p, Codes.FIELD_INVALID, `the same selector as [${first}] is listed twice`);
      out.push(sel);
    });
    return out;
  }

  private selector(v: Obj, p: FieldPath): LabelSelector | undefined {
    // Unknown keys are refused by the kind's schema (schema.ts).
    const before = this.issues.length;
    const matchLabels = this.stringMap(v, 'matchLabels', p);
    const exprs: NonNullable<LabelSelector['matchExpressions']>[number][] = [];
    const seen = new Map<string, number>();
    (this.list(v, 'matchExpressions', p) ?? []).forEach((e, j) => {
      const ep = [...p, 'matchExpressions', j];
      if (!isObj(e)) {
        this.add(ep, Codes.FIELD_INVALID, `must be a map, got ${describe(e)}`);
        return;
      }
      const key = this.str(e, 'key', ep, true);
      const op = this.str(e, 'operator', ep, true);
      const values = this.strings(e, 'values', ep);
      if (key === undefined || op === undefined) return;
      if (op !== 'In' && op !== 'NotIn' && op !== 'Exists' && op !== 'DoesNotExist') {
        this.add(
          [...ep, 'operator'],
          Codes.FIELD_INVALID,
          `must be In, NotIn, Exists or DoesNotExist, got "${op}"`,
        );
        return;
      }
      if ((op === 'In' || op === 'NotIn') && values.length === 0) {
        this.add([...ep, 'values'], Codes.FIELD_REQUIRED, `operator ${op} needs at least one value`);
      } else if ((op === 'Exists' || op === 'DoesNotExist') && values.length > 0) {
        this.add([...ep, 'values'], Codes.FIELD_INVALID, `operator ${op} takes no values`);
      }
      this.noDuplicates(values, values, [...ep, 'values'], (x) => `"${x}"`);
      const canon = JSON.stringify([key, op, [...values].sort()]);
      const twin = seen.get(canon);
      if (twin !== undefined)
        this.add(ep, Codes.FIELD_INVALID, `the same expression as matchExpressions[${twin}] is listed twice`);
      else seen.set(canon, j);
      exprs.push({ key, operator: op, values });
    });
    if (this.issues.length > before) return undefined;
    return { matchLabels, matchExpressions: exprs };
  }
}
