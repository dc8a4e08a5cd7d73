import type { ServerWritableStream } from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { CHECKPOINT_CHUNK_BYTES, type Chunk } from '@cvc/proto';
import type { Guard } from './grpc-server.js';

/** Ends a server stream with the gRPC status of `err` (grpc-js sends it when 'error' is emitted; destroy() does not). */
export type FailStream = (call: { emit(event: 'error', err: Error): boolean }, err: unknown) => void;

/** Streams `stream` as Chunks (the total size in the first, the sha256 of all the data in the last). */
export async function writeChunks(call: { write(c: Chunk): boolean }, size: number, stream: AsyncIterable<Uint8Array>): Promise<void> {
  const hash = createHash('sha256');
  let first = true;
  for await (const chunk of stream) {
    for (let i = 0; i < chunk.length; i += CHECKPOINT_CHUNK_BYTES) {
      const part = Buffer.from(chunk.buffer, chunk.byteOffset + i, Math.min(CHECKPOINT_CHUNK_BYTES, chunk.length - i));
      hash.update(part);
      call.write({ data: part, sha256: '', size: first ? size : 0 });
      first = false;
    }
  }
  call.write({ data: Buffer.alloc(0), sha256: hash.digest('hex'), size: first ? size : 0 });
}

/**
 * A user's watch stream (WatchRun, WatchSweep, WatchClusterJob): checks the
 * caller, sends what `watch` sends until it resolves (the watched thing ended)
 * or the client cancels, then ends the stream, or fails it with the error's status.
 */
export function watchHandler<Req, E>(
  method: string,
  guard: Guard,
  fail: FailStream,
  watch: (req: Req, send: (e: E) => void, signal: AbortSignal) => Promise<void>,
): (call: ServerWritableStream<Req, E>) => void {
  return (call) => {
    try {
      guard(call.metadata, 'user', method);
    } catch (err) {
      fail(call, err);
      return;
    }
    const ac = new AbortController();
    call.on('cancelled', () => ac.abort());
    watch(call.request, (e) => call.write(e), ac.signal).then(
      () => call.end(),
      (err: unknown) => fail(call, err),
    );
  };
}
