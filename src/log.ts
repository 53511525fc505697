import { fstatSync, writeSync } from 'node:fs';
import { isatty } from 'node:tty';
import { type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/** Options for {@link createLogger}. */
interface LoggerOptions {
  /** pino level; default `info` (or `VIPMESH_LOG_LEVEL`). */
  level?: string;
  /**
   * Pretty, human-readable output, one line per event (`[12:00:01.234] INFO: (arp) message {"vip":...}`);
   * default: when stdout is a TTY.
   */
  pretty?: boolean;
  /**
   * One plain line per record with a syslog priority prefix (`<6>arp: holding VIP ip=...`), for the
   * journal; default: when stdout is the journal stream systemd names in `JOURNAL_STREAM`, unless
   * `VIPMESH_LOG_FORMAT=json`. JSON lines otherwise.
   */
  journal?: boolean;
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
  const journal =
    opts.journal ?? (destination === 1 && process.env['VIPMESH_LOG_FORMAT'] !== 'json' && isJournalStream(1));
  if (journal) {
    return pino({ level }, { write: (line: string) => writeSync(destination, journalLine(line)) });
  }
  return pino({ level }, pino.destination({ dest: destination, sync: true }));
}

/** True when `fd` is the stream systemd connected to the journal (`JOURNAL_STREAM=<dev>:<ino>`). */
export function isJournalStream(fd: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const want = env['JOURNAL_STREAM'];
  if (want === undefined) return false;
  try {
    const st = fstatSync(fd);
    return want === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

/** pino level -> syslog priority (journald reads the `<N>` prefix). */
function priority(level: number): number {
  if (level >= 60) return 2;
  if (level >= 50) return 3;
  if (level >= 40) return 4;
  if (level >= 30) return 6;
  return 7;
}

const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'module', 'msg']);

function text(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'object' && value !== null && 'message' in value) {
    const e = value as { message: unknown; code?: unknown };
    return JSON.stringify(e.code === undefined ? e.message : `${String(e.message)} (${String(e.code)})`);
  }
  return JSON.stringify(value) ?? String(value);
}

/**
 * One pino JSON record as a journal line: `<priority>module: message key=value ...` (time, pid and host
 * are the journal's own fields; an error shows its message and code).
 */
export function journalLine(json: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const fields = Object.entries(rec)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${text(v)}`);
  const module = typeof rec['module'] === 'string' ? `${rec['module']}: ` : '';
  const msg = typeof rec['msg'] === 'string' ? rec['msg'] : '';
  const body = [`${module}${msg}`, ...fields].filter((p) => p !== '').join(' ');
  return `<${priority(Number(rec['level']))}>${body.replaceAll('\n', '\\n')}\n`;
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
