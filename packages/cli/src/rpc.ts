import type { ClientReadableStream, ClientUnaryCall, ServiceError } from '@grpc/grpc-js';
import { CancelledError } from '@cvc/core';
import { remoteError as remote, RemoteError } from './errors.js';

export { RemoteError };

/**
 * Promisifies one unary call; a failure becomes a RemoteError with the
 * server's message. An abort of `signal` cancels the call and rejects with a
 * CancelledError naming `what`.
 */
export function unary<Res>(
  signal: AbortSignal | undefined,
  what: string,
  invoke: (cb: (e: ServiceError | null, r: Res) => void) => ClientUnaryCall,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new CancelledError(what, { cause: signal.reason }));
      return;
    }
    let settled = false;
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      call.cancel();
      reject(new CancelledError(what, { cause: signal?.reason }));
    };
    const call = invoke((e, r) => {
      signal?.removeEventListener('abort', onAbort);
      if (settled) return;
      settled = true;
      if (e) reject(remote(e));
      else resolve(r);
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Reads a server stream to its end, handing every message to `onData`. An
 * abort of `signal` cancels the stream and rejects with a CancelledError.
 */
export function readStream<T>(signal: AbortSignal | undefined, what: string, stream: ClientReadableStream<T>, onData: (m: T) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onAbort = (): void => {
      finish(new CancelledError(what, { cause: signal?.reason }));
      stream.cancel();
    };
    stream.on('data', (m: T) => {
      if (settled) return;
      try {
        onData(m);
      } catch (err) {
        finish(err as Error);
        stream.cancel();
      }
    });
    // Listened to before any cancel: the stream reports its cancellation as an 'error'.
    stream.on('error', (e: ServiceError) => finish(remote(e)));
    stream.on('end', () => finish());
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** How `followUntilFinal` follows one kind of thing (a run, a sweep, a clustering job). */
export interface Follow<E, T> {
  /** e.g. "run R": used in messages. */
  readonly what: string;
  /** What goes on after Ctrl-C: "run", "sweep", "job". */
  readonly noun: string;
  /** The commands a user can re-run after Ctrl-C, e.g. "cvc run watch R follows it again, cvc run cancel R stops it". */
  readonly again: string;
  readonly stream: ClientReadableStream<E>;
  /** The snapshot an event carries, if any. */
  readonly pick: (e: E) => T | undefined;
  /** Called with each event that carried a snapshot (draw bars, log changes). */
  readonly onEvent: (t: T, e: E) => void;
  /** Ends the display (called once, on every path). */
  readonly stop: () => void;
  readonly isFinal: (t: T) => boolean;
  /** Fetches the current snapshot when the stream ended before a final state. */
  readonly refetch: () => Promise<T>;
}

/**
 * Follows a watch stream until the thing it watches ends and returns its last
 * snapshot. An abort of `signal` stops watching (the work goes on on the
 * cluster), tells the user how to follow it again and rejects with a
 * CancelledError; a stream without events is a RemoteError.
 */
export async function followUntilFinal<E, T>(signal: AbortSignal | undefined, stderr: NodeJS.WritableStream, f: Follow<E, T>): Promise<T> {
  let last: T | undefined;
  try {
    await readStream(signal, `watching ${f.what}`, f.stream, (e: E) => {
      const t = f.pick(e);
      if (t === undefined) return;
      last = t;
      f.onEvent(t, e);
    });
  } catch (err) {
    f.stop();
    if (err instanceof CancelledError) stderr.write(`the ${f.noun} goes on on the cluster: ${f.again}\n`);
    throw err;
  } finally {
    f.stop();
  }
  if (last === undefined) throw new RemoteError('NO_EVENTS', `no events for ${f.what}`);
  return f.isFinal(last) ? last : f.refetch();
}
