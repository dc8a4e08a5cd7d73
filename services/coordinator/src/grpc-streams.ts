import type { ServerWritableStream } from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { CHECKPOINT_CHUNK_BYTES, type Chunk } from '@cvc/proto';
import { CoordinatorError } from './errors.js';
import type { Guard } from './grpc-server.js';
import { watchClient, type WatchSlots } from './watch-slots.js';

/** Ends a server stream with the gRPC status of `err` (grpc-js sends it when 'error' is emitted; destroy() does not). */
export type FailStream = (call: { emit(event: 'error', err: Error): boolean }, err: unknown) => void;

/** What `writeChunks` writes to: a gRPC server stream (its 'drain', 'cancelled' and 'close' events). */
export interface ChunkSink {
  /** grpc-js sets it once the client went away ('cancelled' may have been emitted before anyone listened). */
  readonly cancelled?: boolean;
  write(c: Chunk): boolean;
  once(event: 'drain' | 'cancelled' | 'close', listener: () => void): unknown;
  removeListener(event: 'drain' | 'cancelled' | 'close', listener: () => void): unknown;
}

/** Resolves once `call` wants more data; rejects with CANCELLED when the client went away first. */
function drained(call: ChunkSink): Promise<void> {
  const gone = (): CoordinatorError => new CoordinatorError('CANCELLED', 'the download was cancelled by the client');
  // A client gone before this wait would never emit 'drain' (nor 'cancelled' again): the wait would hold the object open for good.
  if (call.cancelled === true) return Promise.reject(gone());
  return new Promise((resolve, reject) => {
    const off = (): void => {
      call.removeListener('drain', onDrain);
      call.removeListener('cancelled', onGone);
      call.removeListener('close', onGone);
    };
    const onDrain = (): void => {
      off();
      resolve();
    };
    const onGone = (): void => {
      off();
      reject(gone());
    };
    call.once('drain', onDrain);
    call.once('cancelled', onGone);
    call.once('close', onGone);
  });
}

/**
 * Streams `stream` as Chunks (the total size in the first, the sha256 of all
 * the data in the last). Waits for the client whenever the stream's buffer is
 * full, so a slow reader holds about one chunk in memory, not the whole object.
 */
export async function writeChunks(call: ChunkSink, size: number, stream: AsyncIterable<Uint8Array>): Promise<void> {
  const hash = createHash('sha256');
  let first = true;
  for await (const chunk of stream) {
    for (let i = 0; i < chunk.length; i += CHECKPOINT_CHUNK_BYTES) {
      const part = Buffer.from(chunk.buffer, chunk.byteOffset + i, Math.min(CHECKPOINT_CHUNK_BYTES, chunk.length - i));
      hash.update(part);
      const more = call.write({ data: part, sha256: '', size: first ? size : 0 });
      first = false;
      if (!more) await drained(call);
    }
  }
  call.write({ data: Buffer.alloc(0), sha256: hash.digest('hex'), size: first ? size : 0 });
}

/**
 * A user's watch stream (WatchRun, WatchSweep, WatchClusterJob): checks the
 * caller, takes one of `slots` (RESOURCE_EXHAUSTED over a cap), sends what
 * `watch` sends until it resolves (the watched thing ended) or the client
 * cancels (or is found gone by the server's keepalive), then ends the stream,
 * or fails it with the error's status, and gives the slot back.
 */
export function watchHandler<Req, E>(
  method: string,
  guard: Guard,
  fail: FailStream,
  watch: (req: Req, send: (e: E) => void, signal: AbortSignal) => Promise<void>,
  slots?: WatchSlots,
): (call: ServerWritableStream<Req, E>) => void {
  return (call) => {
    let release: () => void;
    try {
      guard(call.metadata, 'user', method);
      const auth = call.metadata.get('authorization')[0];
      release = slots ? slots.take(watchClient(call.getPeer(), typeof auth === 'string' ? auth : undefined)) : () => {};
    } catch (err) {
      fail(call, err);
      return;
    }
    const ac = new AbortController();
    call.on('cancelled', () => ac.abort());
    watch(call.request, (e) => call.write(e), ac.signal)
      .then(
        () => call.end(),
        (err: unknown) => fail(call, err),
      )
      .finally(release);
  };
}
