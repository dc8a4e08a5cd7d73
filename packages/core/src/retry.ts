import { setTimeout as sleepFor } from 'node:timers/promises';
import { CancelledError, ConfigError } from './errors.js';

/**
 * What a retry policy's `retryable` rule says about one failure:
 * `false`: not worth retrying, thrown at once; `true`: retry after the
 * policy's own backoff; `{ retryAfterMs }`: retry after this long, a hint from
 * the server (e.g. gRPC trailing metadata), used as given instead of the backoff.
 */
export type RetryDecision = boolean | { readonly retryAfterMs: number };

/** Passed to `onRetry` before each wait. */
export interface RetryEvent {
  /** The failure that is being retried. */
  readonly error: unknown;
  /** Failed tries so far (1 before the first retry). */
  readonly failures: number;
  /** How long the policy waits before the next try, in ms. */
  readonly delayMs: number;
  /** True when the wait is the server's hint rather than the backoff. */
  readonly hinted: boolean;
  /** The operation's name (`RetryOptions.what`). */
  readonly what: string;
}

/**
 * One retry policy for every layer that retries (S3 requests, gRPC calls to
 * the coordinator, reconnect loops): exponential backoff with equal jitter, a
 * cap on each wait, a total deadline and a rule for what is retryable.
 *
 * Backoff with equal jitter: after the n-th failure the ceiling is
 * `c = min(maxDelayMs, initialDelayMs * multiplier^(n-1))` and the wait is
 * drawn uniformly from `[c/2, c]`. Half the ceiling is kept so waits grow
 * with every failure (unlike full jitter, which may draw ~0); the random half
 * spreads clients that failed together so they do not retry in lockstep.
 */
export interface RetryOptions {
  /** Ceiling of the first wait, in ms (default 200). */
  readonly initialDelayMs?: number;
  /** Cap on any one backoff wait, in ms (default 5 000). A server hint is not capped. */
  readonly maxDelayMs?: number;
  /** Growth of the ceiling per failure (default 2). */
  readonly multiplier?: number;
  /**
   * Total time budget from the first try, in ms (default 30 000; `Infinity`:
   * none). A wait that would end past it is not started: the last error is
   * thrown instead.
   */
  readonly deadlineMs?: number;
  /** Most tries in all, the first included (default Infinity). */
  readonly maxAttempts?: number;
  /** Which failures are retried (default: none; every policy says what is transient for its layer). */
  readonly retryable?: (err: unknown) => RetryDecision;
  /** Called before each wait, e.g. to log the failure being ridden out. */
  readonly onRetry?: (event: RetryEvent) => void;
  /** Stops retrying: a wait in progress ends and `CancelledError` is thrown (the try in progress is not interrupted unless `fn` watches the signal). */
  readonly signal?: AbortSignal | undefined;
  /** Names the operation in a `CancelledError` (default "operation"). */
  readonly what?: string;
  /** Injectable for tests: waits `ms`, rejecting when `signal` aborts (default: a timer). */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Injectable for tests: the time in ms (default Date.now). */
  readonly now?: () => number;
  /** Injectable for tests: uniform in [0, 1) (default Math.random). */
  readonly random?: () => number;
}

const defaultSleep = (ms: number, signal?: AbortSignal): Promise<void> => sleepFor(ms, undefined, signal ? { signal } : {});

function checkNonNegative(field: string, v: number): number {
  if (!(v >= 0)) throw new ConfigError(`retry.${field}`, `must be a number >= 0, got ${v}`);
  return v;
}

/** The policy's backoff: the wait after the `failures`-th failure, given a uniform draw `u` in [0, 1). */
export function backoffDelay(failures: number, options: Pick<RetryOptions, 'initialDelayMs' | 'maxDelayMs' | 'multiplier'>, u: number): number {
  const initial = options.initialDelayMs ?? 200;
  const max = options.maxDelayMs ?? 5000;
  const mult = options.multiplier ?? 2;
  const ceiling = Math.min(max, initial * mult ** Math.max(0, failures - 1));
  return ceiling / 2 + u * (ceiling / 2);
}

/**
 * Backoff state for loops that retry forever and start over after a success
 * (a worker's pull loop, a watch that reconnects): `next()` gives the wait
 * after one more failure, `reset()` forgets the failures.
 */
export interface Backoff {
  next(): number;
  reset(): void;
}

/** Creates a `Backoff` with the policy's growth, cap and jitter (deadline and attempts do not apply). */
export function createBackoff(options: Pick<RetryOptions, 'initialDelayMs' | 'maxDelayMs' | 'multiplier' | 'random'> = {}): Backoff {
  const random = options.random ?? Math.random;
  let failures = 0;
  return {
    next: () => backoffDelay(++failures, options, random()),
    reset: () => {
      failures = 0;
    },
  };
}

/**
 * Runs `fn` until it succeeds, a failure is not retryable, the deadline or
 * the attempt limit is reached (the last error is thrown, unchanged), or
 * `signal` aborts (`CancelledError`). `fn` gets the 1-based try number.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? defaultSleep;
  const deadlineMs = checkNonNegative('deadlineMs', options.deadlineMs ?? 30_000);
  const maxAttempts = checkNonNegative('maxAttempts', options.maxAttempts ?? Infinity);
  checkNonNegative('initialDelayMs', options.initialDelayMs ?? 0);
  checkNonNegative('maxDelayMs', options.maxDelayMs ?? 0);
  const retryable = options.retryable ?? (() => false);
  const what = options.what ?? 'operation';
  const signal = options.signal;
  // A function, not a narrowed property read: the signal can abort during any await.
  const aborted = (): boolean => signal?.aborted === true;
  const until = now() + deadlineMs;
  for (let attempt = 1; ; attempt++) {
    if (aborted()) throw new CancelledError(what, { cause: signal?.reason });
    try {
      return await fn(attempt);
    } catch (err) {
      if (aborted()) throw new CancelledError(what, { cause: err });
      const decision = retryable(err);
      if (decision === false || attempt >= maxAttempts) throw err;
      const hinted = typeof decision === 'object';
      const delayMs = hinted ? Math.max(0, decision.retryAfterMs) : backoffDelay(attempt, options, random());
      if (now() + delayMs > until) throw err;
      options.onRetry?.({ error: err, failures: attempt, delayMs, hinted, what });
      try {
        await sleep(delayMs, signal);
      } catch (sleepErr) {
        if (aborted()) throw new CancelledError(what, { cause: err });
        throw sleepErr;
      }
    }
  }
}
