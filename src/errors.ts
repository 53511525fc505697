/**
 * One error base for the whole program. Every error a user can meet carries a stable
 * `code`; docs/errors.md lists them all and a test keeps that page and the source in step.
 * Modules declare their own code strings (prefix `VIPMESH_`); tests assert `.code`, never message text.
 */
export class VipmeshError extends Error {
  /** Stable machine-readable code, e.g. `VIPMESH_POOL_OVERLAP`. */
  readonly code: string;
  /** Extra structured context (object, field, errno, ...) for logs and JSON output. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: string,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VipmeshError';
    this.code = code;
    this.details = options.details ?? {};
  }

  /** A plain object for JSON output: `{code, message, ...details}`. */
  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.details };
  }
}

/** True when `err` is a VipmeshError, optionally with the given code. */
export function isVipmeshError(err: unknown, code?: string): err is VipmeshError {
  return err instanceof VipmeshError && (code === undefined || err.code === code);
}

/** The kernel errno name (`EEXIST`, `ESRCH`, ...) carried by a system error, if any. */
export function errnoOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') {
    return err.code;
  }
  return undefined;
}
