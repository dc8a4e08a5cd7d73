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
