/** Structured logger handed to every service and library that logs. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** Field names whose values are never written: they hold credentials. */
const SECRET_FIELD = /(token|passw(or)?d|pass$|secret|authorization|credential|private.?key)/i;

/**
 * A logger that writes one JSON object per line to `write` (default stderr).
 * Values of fields named like credentials (token, password, secret, ...) are
 * replaced by "[redacted]", and so is every occurrence of a value in
 * `secrets` anywhere in a line (an error message that quotes a URL with a
 * password, say).
 */
export function createJsonLogger(
  level: LogLevel = 'info',
  write: (line: string) => void = (l) => process.stderr.write(l),
  base: Record<string, unknown> = {},
  secrets: readonly string[] = [],
): Logger {
  const known = secrets.filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  const replacer = (key: string, value: unknown): unknown =>
    key !== '' && SECRET_FIELD.test(key) && value !== undefined && value !== '' ? '[redacted]' : value;
  const emit = (lvl: Exclude<LogLevel, 'silent'>, msg: string, fields?: Record<string, unknown>): void => {
    if (order[lvl] < order[level]) return;
    let line = JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...base, ...fields }, replacer);
    for (const s of known) line = line.split(JSON.stringify(s).slice(1, -1)).join('[redacted]');
    write(line + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

/** A logger that drops everything (tests, libraries used quietly). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
