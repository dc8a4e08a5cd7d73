import { status, type ServiceError } from '@grpc/grpc-js';
import { CancelledError } from '@cvc/core';

/**
 * How long a worker holds a task, by default, for a coordinator that takes
 * its calls but answers none (each try ends in DEADLINE_EXCEEDED), in ms.
 */
export const DEFAULT_HUNG_MS = 300_000;

/**
 * The retry rule of a hold (a task kept, with its heartbeat, while the
 * coordinator does not answer): a coordinator that is down or restarting
 * (UNAVAILABLE) is waited for without limit, since every delivery handed back
 * counts towards max_deliver; one that is hung (DEADLINE_EXCEEDED: it takes
 * the call and never answers, possibly for good) only until `hungMs` have
 * passed since the hold began or since its last UNAVAILABLE. Past that the
 * error is thrown, and the attempt fails the normal way (FailFold, nak with
 * backoff), releasing the task. Any other code is not retried.
 */
export function holdRetryable(hungMs: number, now: () => number = Date.now): (err: unknown) => boolean {
  let since = now();
  return (err) => {
    const code = (err as Partial<ServiceError>).code;
    if (code === status.UNAVAILABLE) {
      since = now();
      return true;
    }
    return code === status.DEADLINE_EXCEEDED && now() - since < hungMs;
  };
}

/** Waits `ms`; rejects with CancelledError naming `what` as soon as `signal` aborts (or at once when it has). */
export function abortableSleep(ms: number, signal: AbortSignal, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(new CancelledError(what, { cause: signal.reason }));
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new CancelledError(what, { cause: signal.reason }));
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
