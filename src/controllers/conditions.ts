import type { Condition } from '../api/types.js';

/**
 * `conds` with `cond` in the place of the condition of its type, or after the others when there is none
 * (Kubernetes' `meta.SetStatusCondition`). Two controllers that each moved their own condition to the end
 * would see the other's write as a change of theirs and write again, back and forth for good.
 */
export function withCondition(conds: readonly Condition[] | undefined, cond: Condition): Condition[] {
  const list = conds ?? [];
  const at = list.findIndex((c) => c.type === cond.type);
  return at < 0 ? [...list, cond] : list.map((c, i) => (i === at ? cond : c));
}
