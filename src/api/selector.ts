import { apiError } from './status.js';

/** One requirement of a label selector. */
type LabelRequirement =
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'exists' | '!exists' };

const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/**
 * Parse a Kubernetes equality-based label selector: `app=web,tier!=db,canary,!legacy` (`==` as `=`).
 * Set-based forms (`in`, `notin`) are not supported and are rejected by name. Empty text selects all.
 */
export function parseLabelSelector(text: string): LabelRequirement[] {
  const out: LabelRequirement[] = [];
  if (text.trim() === '') return out;
  for (const raw of text.split(',')) {
    const part = raw.trim();
    let req: LabelRequirement;
    const m = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (m !== null) {
      req = { key: m[1]!, op: m[2] === '!=' ? '!=' : '=', value: m[3]!.trim() };
      if (!VALUE.test(req.value) || req.value.length > 63) throw bad(text, `bad label value in "${part}"`);
    } else if (part.startsWith('!')) {
      req = { key: part.slice(1).trim(), op: '!exists' };
    } else {
      req = { key: part, op: 'exists' };
    }
    if (!KEY.test(req.key))
      throw bad(text, `bad label key in "${part}" (set-based selectors are not supported)`);
    out.push(req);
  }
  return out;
}

function bad(text: string, why: string) {
  return apiError('VIPMESH_API_BAD_REQUEST', `labelSelector "${text}": ${why}`);
}

/** True when `labels` satisfy every requirement. */
export function matchesLabels(reqs: LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.hasOwn(l, r.key);
    if (r.op === 'exists') return has;
    if (r.op === '!exists') return !has;
    if (r.op === '=') return has && l[r.key] === r.value;
    return !has || l[r.key] !== (r as { value: string }).value;
  });
}
