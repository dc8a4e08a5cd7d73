import { describeError } from '@cvc/core';
import type { DocStore } from '@cvc/messaging';
import { CoordinatorError } from './errors.js';

/** How to follow one kind of KV document (a run, a clustering job, a sweep) until it ends. */
export interface DocWatch<D, V> {
  readonly store: DocStore<D>;
  readonly key: string;
  /** The document's public view, from the stored value. */
  readonly view: (doc: D) => V;
  /** True once the view is in a final state (nothing more will change). */
  readonly isFinal: (view: V) => boolean;
  /** Names the document in the error a client sees when the watch ends under it, e.g. "run R". */
  readonly what: string;
}

/**
 * Resolves once `signal` aborts or the document reaches a final state, calling
 * `send` with each new view. A watch that ends under it (NATS went away, a bad
 * value) rejects with UNAVAILABLE, so the client is told to retry and never
 * left hanging. The caller sends the current view first.
 */
export function watchUntilFinal<D, V>(w: DocWatch<D, V>, send: (view: V) => void, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let stop: (() => void) | undefined;
    const done = (): void => {
      stop?.();
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    w.store
      .watch(
        w.key,
        (value) => {
          const view = w.view(value);
          send(view);
          if (w.isFinal(view)) done();
        },
        (err) => {
          stop = undefined;
          reject(
            new CoordinatorError('UNAVAILABLE', `watching ${w.what} stopped${err === undefined ? '' : `: ${describeError(err)}`}; watch again`, { cause: err }),
          );
        },
      )
      .then((s) => {
        stop = s;
        if (signal.aborted) s();
      }, reject);
  });
}
