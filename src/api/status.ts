/**
 * The control plane's errors and their Kubernetes `Status` form. The store throws VipmeshError with one of
 * the codes below; the API turns each into the HTTP status and `reason` a Kubernetes client expects, and the
 * client turns a Status back into the same code, so `vipmesh apply` sees `VIPMESH_API_CONFLICT` whether the
 * conflict came from the store in-process or over HTTPS.
 */
import { VipmeshError } from '../errors.js';
import type { ConfigProblem as PoolConfigProblem } from '../vip-pool/index.js';

/**
 * One field-level problem: the part of vip-pool's ConfigProblem the API uses (`path` is e.g.
 * `spec.addresses[0]`, `code` a stable VIPMESH_* code).
 */
export type FieldProblem = Pick<PoolConfigProblem, 'path' | 'code' | 'message'>;

/** Validates one object; an empty list means valid. The same function `vipmesh check-config` uses. */
export type Validator = (obj: unknown) => FieldProblem[];

/**
 * Validates one object against the others already stored of the resources it shares a namespace of
 * names or addresses with (pools: vip-pool's `poolConflicts`); an empty list means valid.
 */
export type SetValidator = (obj: unknown, existing: readonly unknown[]) => FieldProblem[];

/** A Kubernetes `Status` object (meta/v1). */
export interface Status {
  apiVersion: 'v1';
  kind: 'Status';
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message: string;
  reason: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    causes?: Array<{ field?: string; message: string; reason?: string }>;
  };
  code: number;
}

/** code -> [HTTP status, Kubernetes reason]. */
const HTTP: Record<string, [number, string]> = {
  VIPMESH_API_BAD_REQUEST: [400, 'BadRequest'],
  VIPMESH_API_UNAUTHORIZED: [401, 'Unauthorized'],
  VIPMESH_API_FORBIDDEN: [403, 'Forbidden'],
  VIPMESH_API_NOT_FOUND: [404, 'NotFound'],
  VIPMESH_API_METHOD_NOT_ALLOWED: [405, 'MethodNotAllowed'],
  VIPMESH_API_ALREADY_EXISTS: [409, 'AlreadyExists'],
  VIPMESH_API_CONFLICT: [409, 'Conflict'],
  VIPMESH_API_GONE: [410, 'Expired'],
  VIPMESH_API_TOO_LARGE: [413, 'RequestEntityTooLarge'],
  VIPMESH_API_UNSUPPORTED_MEDIA_TYPE: [415, 'UnsupportedMediaType'],
  VIPMESH_API_INVALID: [422, 'Invalid'],
  VIPMESH_STORE_UNAVAILABLE: [503, 'ServiceUnavailable'],
};

/** Build a control-plane error. `details` may carry `name`, `kind`, `causes` for the Status. */
export function apiError(
  code: keyof typeof HTTP | string,
  message: string,
  details: Record<string, unknown> = {},
  cause?: unknown,
): VipmeshError {
  return new VipmeshError(code, message, { details, cause });
}

/** The Status for any error: VipmeshErrors by code, anything else a 500 InternalError. */
export function statusFor(err: unknown): Status {
  if (err instanceof VipmeshError && HTTP[err.code] !== undefined) {
    const [code, reason] = HTTP[err.code]!;
    const d = err.details as Status['details'] & Record<string, unknown>;
    const details: NonNullable<Status['details']> = {};
    if (typeof d.name === 'string') details.name = d.name;
    if (typeof d.kind === 'string') details.kind = d.kind;
    if (typeof d.group === 'string') details.group = d.group;
    if (Array.isArray(d.causes)) details.causes = d.causes;
    return {
      apiVersion: 'v1',
      kind: 'Status',
      metadata: {},
      status: 'Failure',
      message: err.message,
      reason,
      ...(Object.keys(details).length > 0 ? { details } : {}),
      code,
    };
  }
  return {
    apiVersion: 'v1',
    kind: 'Status',
    metadata: {},
    status: 'Failure',
    message: `internal error: ${(err as Error)?.message ?? String(err)}`,
    reason: 'InternalError',
    code: 500,
  };
}

/** The VipmeshError a Status (from an HTTP response) stands for; unknown statuses get VIPMESH_API_ERROR. */
export function errorFromStatus(status: Partial<Status>, httpStatus: number): VipmeshError {
  const http = status.code ?? httpStatus;
  let code = 'VIPMESH_API_ERROR';
  for (const [c, [h, reason]] of Object.entries(HTTP)) {
    if (h === http && (status.reason === undefined || status.reason === reason)) {
      code = c;
      break;
    }
  }
  const message = status.message ?? `the server answered HTTP ${httpStatus}`;
  return new VipmeshError(code, message, { details: { ...(status.details ?? {}), httpStatus } });
}

/** A 422 error naming every field `problems` lists. */
export function invalidError(kind: string, name: string, problems: FieldProblem[]): VipmeshError {
  const causes = problems.map((p) => ({ field: p.path, message: p.message, reason: p.code }));
  const text = problems.map((p) => `${p.path}: ${p.message}`).join('; ');
  return apiError('VIPMESH_API_INVALID', `${kind} "${name}" is invalid: ${text}`, { kind, name, causes });
}
