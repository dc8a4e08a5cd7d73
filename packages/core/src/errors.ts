/**
 * Base class of every typed error in cvc. Each package derives its own
 * (`DataError`, `ModelError`, ...) with a closed union of codes (`C`), so
 * callers branch on `instanceof` and `code`, and the edge (CLI, gRPC) maps
 * every code to an exit code or a status code on purpose.
 */
export class CvcError<C extends string = string> extends Error {
  /** A stable, machine-readable code, e.g. `SHARD_CORRUPT`; each subclass narrows it to its package's union. */
  readonly code: C;

  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A configuration or option value was wrong. */
export class ConfigError extends CvcError<'CONFIG_INVALID'> {
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', `${field}: ${message}`, options);
    this.field = field;
  }
}

/** An operation was cancelled through its AbortSignal. */
export class CancelledError extends CvcError<'CANCELLED'> {
  constructor(what: string, options?: { cause?: unknown }) {
    super('CANCELLED', `${what} was cancelled`, options);
  }
}

/** Throws `CancelledError` when `signal` has been aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted === true) throw new CancelledError(what, { cause: signal.reason });
}

/** A short description of any thrown value, for messages and logs. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
