import { notifyReady } from '../util/sd-notify.js';
import { ShutdownStack } from './shutdown-stack.js';

/** The signals that stop a daemon cleanly: systemd's SIGTERM, Ctrl-C, and a closed terminal. */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/** Where signals come from: `process`, or a fake in tests. */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

/**
 * Resolve on the first of {@link STOP_SIGNALS} (with the signal's name); `dispose()` stops listening.
 * While listening, those signals no longer kill the process: the daemon shuts down in order instead.
 */
export function untilSignal(source: SignalSource = process): { signal: Promise<string>; dispose(): void } {
  let on: (sig: NodeJS.Signals) => void = () => undefined;
  const signal = new Promise<string>((resolve) => {
    on = (sig) => resolve(sig);
    for (const s of STOP_SIGNALS) source.on(s, on);
  });
  return {
    signal,
    dispose: () => {
      for (const s of STOP_SIGNALS) source.off(s, on);
    },
  };
}

/** What a daemon's start gets from {@link runDaemon}. */
interface DaemonContext {
  /** Resolves with the name of the first stop signal (a start may race a long wait against it). */
  readonly signal: Promise<string>;
  /** Push each close here once its part is up; they run in reverse order on the way out. */
  readonly stack: ShutdownStack;
}

/** A daemon that is up: how it reports so. */
export interface DaemonUp {
  /** Tell systemd READY=1 with this status (Type=notify); absent: no notification. */
  readyStatus?: string;
  /** Log that it is up (after the readiness notification). */
  up(): void;
  /** Log that `signal` stops it (before anything is closed). */
  stopping(signal: string): void;
}

/** A start that a stop signal ended before the daemon was up (the start logged it). */
interface DaemonStopped {
  stoppedBy: string;
}

/** Options of {@link runDaemon}. */
interface RunDaemonOptions {
  /** Start the daemon, pushing each part's close on `d.stack`. */
  start(d: DaemonContext): Promise<DaemonUp | DaemonStopped>;
  /** [process] */
  signals?: SignalSource;
  /** [sd_notify READY=1 through systemd-notify] */
  notifyReady?: (status: string) => Promise<unknown>;
}

/**
 * The shell every long-running command shares (`vipmesh server`, `agent`, `announce`): listen for
 * SIGTERM, SIGINT and SIGHUP, start, notify readiness, wait for a signal, then close everything the
 * start pushed in reverse order. The same happens when the start fails (its error is rethrown once
 * everything is closed) or when a signal ends it early. A close that fails does not stop the others; the
 * first such error is thrown at the end.
 */
export async function runDaemon(o: RunDaemonOptions): Promise<void> {
  const { signal, dispose } = untilSignal(o.signals);
  // Nothing else may hold the event loop while the start waits (no socket yet): keep it alive until the end.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const stack = new ShutdownStack({ errors: 'throw' });
  try {
    const started = await o.start({ signal, stack });
    if ('stoppedBy' in started) return;
    if (started.readyStatus !== undefined) {
      await (o.notifyReady ?? notifyReady)(started.readyStatus);
    }
    started.up();
    started.stopping(await signal);
  } finally {
    try {
      await stack.close();
    } finally {
      clearInterval(keepAlive);
      dispose();
    }
  }
}
