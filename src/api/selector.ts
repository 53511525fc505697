import { apiError } from './status.js';

/** One requirement of a label selector. */
type LabelRequirement =
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | '!exists' };

const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** Split at the commas that are not inside `( )`: `a in (x,y),b` -> `a in (x,y)`, `b`. */
function splitTop(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/**
 * Parse a Kubernetes label selector: equality-based `app=web,tier!=db` (`==` as `=`), existence `canary`,
 * `!legacy`, and set-based `env in (prod,staging)`, `env notin (dev)`. Empty text selects all.
 */
export function parseLabelSelector(text: string): LabelRequirement[] {
  const out: LabelRequirement[] = [];
  if (text.trim() === '') return out;
  for (const raw of splitTop(text)) {
    const part = raw.trim();
    let req: LabelRequirement;
    const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(part);
    const m = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (set !== null) {
      const values = set[3]!.split(',').map((v) => v.trim());
      for (const v of values) {
        if (!VALUE.test(v) || v.length > 63) throw bad(text, `bad label value "${v}" in "${part}"`);
      }
      req = { key: set[1]!, op: set[2] === 'in' ? 'in' : 'notin', values };
    } else if (m !== null) {
      req = { key: m[1]!, op: m[2] === '!=' ? '!=' : '=', value: m[3]!.trim() };
      if (!VALUE.test(req.value) || req.value.length > 63) throw bad(text, `bad label value in "${part}"`);
    } else if (part.startsWith('!')) {
      req = { key: part.slice(1).trim(), op: '!exists' };
    } else {
      req = { key: part, op: 'exists' };
    }
    if (!KEY.test(req.key)) throw bad(text, `bad label key in "${part}"`);
    out.push(req);
  }
  return out;
}

function bad(text: string, why: string) {
  return apiError('VIPMESH_API_BAD_REQUEST', `unable to parse requirement: labelSelector "${text}": ${why}`);
}

/** True when `labels` satisfy every requirement (`!=` and `notin` match an absent label, as Kubernetes'). */
export function matchesLabels(reqs: LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.hasOwn(l, r.key);
    switch (r.op) {
      case 'exists':
        return has;
      case '!exists':
        return !has;
      case '=':
        return has && l[r.key] === r.value;
      case '!=':
        return !has || l[r.key] !== r.value;
      case 'in':
        return has && r.values.includes(l[r.key]!);
      default:
        return !has || !r.values.includes(l[r.key]!);
    }
  });
}

/** One requirement of a field selector (`metadata.name=web`, `metadata.namespace!=kube-system`). */
interface FieldRequirement {
  field: string;
  op: '=' | '!=';
  value: string;
}

/** The fields every resource can be selected by. */
const COMMON_FIELDS = ['metadata.name', 'metadata.namespace'];

/** Further selectable fields per kind, as kube-apiserver serves them (what `kubectl describe` asks for). */
const KIND_FIELDS: Readonly<Record<string, string[]>> = {
  Event: [
    'involvedObject.kind',
    'involvedObject.namespace',
    'involvedObject.name',
    'involvedObject.uid',
    'involvedObject.apiVersion',
    'involvedObject.resourceVersion',
    'involvedObject.fieldPath',
    'reason',
    'type',
    'source',
  ],
  Node: ['spec.unschedulable'],
};

/**
 * Parse a field selector with `=`, `==` and `!=`. `metadata.name` and `metadata.namespace` are served for
 * every kind, a few more for Events and Nodes; any other field is refused as kube-apiserver refuses it:
 * `field label not supported: spec.type`.
 */
export function parseFieldSelector(text: string, kind = ''): FieldRequirement[] {
  const out: FieldRequirement[] = [];
  if (text.trim() === '') return out;
  const allowed = [...COMMON_FIELDS, ...(KIND_FIELDS[kind] ?? [])];
  for (const raw of text.split(',')) {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(raw);
    if (m === null) {
      throw apiError('VIPMESH_API_BAD_REQUEST', `invalid selector: '${text}'; can't understand '${raw}'`);
    }
    const field = m[1]!;
    if (!allowed.includes(field)) {
      throw apiError('VIPMESH_API_BAD_REQUEST', `field label not supported: ${field}`);
    }
    out.push({ field, op: m[2] === '!=' ? '!=' : '=', value: m[3]! });
  }
  return out;
}

/** The text of a dotted field of `obj` (`source` of an Event is its component); `''` when absent. */
function fieldText(obj: Record<string, unknown>, field: string): string {
  let v: unknown = obj;
  for (const seg of field.split('.')) v = (v as Record<string, unknown> | undefined)?.[seg];
  if (field === 'source') v = (v as { component?: unknown } | undefined)?.component;
  return v === undefined || v === null ? '' : String(v);
}

/** True when the object's fields satisfy every field requirement. */
export function matchesFields(reqs: FieldRequirement[], obj: Record<string, unknown>): boolean {
  return reqs.every((r) => {
    const v = fieldText(obj, r.field);
    return r.op === '=' ? v === r.value : v !== r.value;
  });
}
