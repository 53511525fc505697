import type { Logger } from '../log.js';

/** How {@link ShutdownStack.close} treats a close function that throws. */
type ShutdownErrors =
  /** Log a warning naming the step and go on; `close()` resolves. */
  | 'log'
  /** Go on closing the rest, then reject with the first error. */
  | 'throw';

/** Options of {@link ShutdownStack}. */
interface ShutdownStackOptions {
  /** Gets a debug line per step closed (and, with `errors: 'log'`, the warnings). */
  logger?: Logger;
  /** ['log'] */
  errors?: ShutdownErrors;
}

/**
 * What a daemon has started, as a stack of named close functions. Each start step pushes its own close
 * once it is up; a failed start, or a stop, closes everything started so far in reverse order (the last
 * started closes first), each step once.
 */
export class ShutdownStack {
  readonly #steps: Array<[string, () => unknown]> = [];
  readonly #log: Logger | undefined;
  readonly #errors: ShutdownErrors;

  constructor(o: ShutdownStackOptions = {}) {
    this.#log = o.logger;
    this.#errors = o.errors ?? 'log';
  }

  /** Close `close` on the way out, before everything pushed earlier. */
  push(step: string, close: () => unknown): void {
    this.#steps.push([step, close]);
  }

  /** How many steps are open. */
  get size(): number {
    return this.#steps.length;
  }

  /** Close every step pushed so far, last first; the stack is empty afterwards (and can be reused). */
  async close(): Promise<void> {
    let first: { err: unknown } | undefined;
    for (const [step, close] of this.#steps.splice(0).reverse()) {
      this.#log?.debug({ step }, 'closing');
      try {
        await close();
      } catch (err) {
        if (this.#errors === 'log') this.#log?.warn({ err, step }, 'error during shutdown');
        else first ??= { err };
      }
    }
    if (first !== undefined) throw first.err;
  }

  /**
   * Run a start: `start` pushes its steps here; if it throws, everything it pushed is closed (in reverse)
   * and the error is rethrown.
   */
  async start<T>(start: (stack: this) => Promise<T>): Promise<T> {
    try {
      return await start(this);
    } catch (err) {
      await this.close().catch(() => undefined);
      throw err;
    }
  }
}
