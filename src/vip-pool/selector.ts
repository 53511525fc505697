import type { LabelSelector } from './types.js';

/** True when `labels` satisfy `sel` (Kubernetes semantics; an empty selector matches everything). */
export function selectorMatches(sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    if (!Object.hasOwn(labels, k) || labels[k] !== v) return false;
  }
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(labels[e.key]!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** True when any selector matches (an empty list matches nothing: callers decide what empty means). */
export function anySelectorMatches(
  sels: readonly LabelSelector[],
  labels: Readonly<Record<string, string>>,
): boolean {
  return sels.some((s) => selectorMatches(s, labels));
}
