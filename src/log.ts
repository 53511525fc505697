import { isatty } from 'node:tty';
import { type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/** Options for {@link createLogger}. */
interface LoggerOptions {
  /** pino level; default `info` (or `VIPMESH_LOG_LEVEL`). */
  level?: string;
  /**
   * Pretty, human-readable output, one line per event (`[12:00:01.234] INFO: (arp) message {"vip":...}`);
   * default: when stdout is a TTY. JSON otherwise (the journal).
   */
  pretty?: boolean;
  /** Where to write; default stdout (fd 1). */
  destination?: number;
}

/**
 * The root logger. Each module gets a child (`log.child({ module: 'arp' })`) through its constructor;
 * there is no global logger.
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? process.env['VIPMESH_LOG_LEVEL'] ?? 'info';
  const destination = opts.destination ?? 1;
  const pretty = opts.pretty ?? (destination === 1 ? process.stdout.isTTY === true : false);
  if (pretty) {
    return pino({
      level,
      transport: {
        target: 'pino-pretty',
        options: {
          destination,
          colorize: isatty(destination),
          translateTime: 'SYS:HH:MM:ss.l',
          singleLine: true,
          ignore: 'pid,hostname,module',
          messageFormat: '{if module}({module}) {end}{msg}',
        },
      },
    });
  }
  return pino({ level }, pino.destination({ dest: destination, sync: true }));
}

/** A logger that drops everything: the default in unit tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * The logger of one module: `root.child({ module })`. pino appends bindings, so a child of a logger that
 * already names a module would print the `module` key twice; that is a wiring mistake, refused here.
 */
export function moduleLogger(root: Logger, module: string): Logger {
  const has = root.bindings()['module'];
  if (has !== undefined) {
    throw new Error(
      `logger for module ${module}: the logger given is already module ${String(has)}; give the root`,
    );
  }
  return root.child({ module });
}
