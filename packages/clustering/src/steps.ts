import { throwIfAborted } from '@cvc/core';

/**
 * How an `...Async` clustering call runs: between its steps (a k-means
 * restart, an EM iteration) it gives the event loop a turn, so a SIGINT
 * handler or a timer can abort `signal`, and reports progress.
 */
export interface StepOptions {
  /** Checked between steps: once aborted, the call rejects with CancelledError. */
  readonly signal?: AbortSignal;
  /** Called after each step with the steps done and the steps planned (an upper bound where a step may end early). */
  readonly onProgress?: (done: number, total: number) => void;
}

/** A computation that yields after each step (the steps done so far) and returns its result. */
export type Steps<R> = Generator<number, R, void>;

/** Runs every step at once (the synchronous form). */
export function drain<R>(steps: Steps<R>): R {
  for (;;) {
    const s = steps.next();
    if (s.done) return s.value;
  }
}

/** Runs the steps with a turn of the event loop after each, aborting on `signal` (CancelledError naming `what`). */
export async function runSteps<R>(steps: Steps<R>, total: number, what: string, opts: StepOptions): Promise<R> {
  throwIfAborted(opts.signal, what);
  for (;;) {
    const s = steps.next();
    if (s.done) return s.value;
    opts.onProgress?.(s.value, total);
    await new Promise<void>((resolve) => setImmediate(resolve));
    throwIfAborted(opts.signal, what);
  }
}
