/**
 * Kubernetes' `fieldValidation` for writes: what becomes of fields the schema does not declare (and of
 * duplicate keys). `Strict` refuses them (400, `Service in version "v1" cannot be handled as a Service: strict decoding
 * error: unknown field "spec.foo"`, kube-apiserver's words), `Warn`
 * drops them and answers with a `Warning` header per field, `Ignore` drops them silently. Without the
 * parameter vipmesh refuses them as invalid (422), as `vipmesh check-config` reports them.
 */
import { Codes } from '../vip-pool/index.js';
import { apiError, type FieldProblem } from './status.js';

/** The values of `fieldValidation`. */
export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

/** The `fieldValidation` query parameter; `VIPMESH_API_BAD_REQUEST` for anything else. */
export function parseFieldValidation(v: string | null): FieldValidation | undefined {
  if (v === null || v === '') return undefined;
  if (v === 'Strict' || v === 'Warn' || v === 'Ignore') return v;
  throw apiError(
    'VIPMESH_API_BAD_REQUEST',
    `fieldValidation: invalid value "${v.slice(0, 32)}": must be one of Ignore, Warn, Strict`,
  );
}

/** `spec.ports[0]["x.y"]` -> `['spec', 'ports', 0, 'x.y']` (the inverse of vip-pool's formatPath). */
export function parseFieldPath(path: string): Array<string | number> {
  const out: Array<string | number> = [];
  const re = /(?:^|\.)([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/gy;
  for (let m = re.exec(path); m !== null && m[0] !== ''; m = re.exec(path)) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(JSON.parse(m[3]!) as string);
  }
  return out;
}

function dropPath(obj: unknown, path: Array<string | number>): void {
  let cur = obj as Record<string | number, unknown> | undefined;
  for (const seg of path.slice(0, -1)) cur = cur?.[seg] as typeof cur;
  if (cur !== undefined && typeof cur === 'object') delete cur[path.at(-1)!];
}

/**
 * Apply `mode` to the unknown-field problems among `problems`: Strict throws, Warn and Ignore delete the
 * fields from `obj` (Warn adds a warning each). Returns whether any field was dropped.
 */
export function handleUnknownFields(
  obj: unknown,
  problems: FieldProblem[],
  mode: FieldValidation,
  warnings: string[] | undefined,
  type: { kind: string; version: string },
): boolean {
  const unknown = problems.filter((p) => p.code === Codes.FIELD_UNKNOWN);
  if (unknown.length === 0) return false;
  if (mode === 'Strict') {
    throw apiError(
      'VIPMESH_API_BAD_REQUEST',
      `${type.kind} in version "${type.version}" cannot be handled as a ${type.kind}: strict decoding error: ${unknown.map((p) => `unknown field "${p.path}"`).join(', ')}`,
    );
  }
  for (const p of unknown) {
    dropPath(obj, parseFieldPath(p.path));
    if (mode === 'Warn') warnings?.push(`unknown field "${p.path}"`);
  }
  return true;
}
