import { Agent as HttpAgent, type ClientRequestArgs } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * The socket of an S3 request sent nothing for the stall deadline while the
 * request waited for the server (connecting, or waiting for the response
 * headers): the socket was destroyed with this error. Internal: the object
 * store turns it into a StorageStallError naming the bucket and key.
 */
export class SocketStallError extends Error {
  readonly code = 'ESTALLED';

  constructor(readonly stallMs: number) {
    super(`no bytes from the S3 server for ${stallMs / 1000} s`);
    this.name = 'SocketStallError';
  }
}

/**
 * Gives every socket of `agent` an inactivity deadline of `stallMs`: a socket
 * that neither sends nor receives for that long is destroyed with a
 * {@link SocketStallError}, so the request waiting on it fails instead of
 * hanging (a kept-alive socket idle in the pool is simply closed, as Node's
 * agent `timeout` does). Once a read's response headers are in, the reader
 * turns this off ({@link releaseSocketDeadline}) and guards the body itself
 * ({@link guardStalls}), so a consumer that pauses the body is not taken for
 * a stalled server.
 */
function withStallDeadline<A extends HttpAgent>(agent: A, stallMs: number): A {
  const create = agent.createConnection.bind(agent);
  agent.createConnection = (options: ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined => {
    const socket = create(options, callback);
    // Node's agents return the net.Socket (tls.TLSSocket) at once; the agent's `timeout` option armed its deadline.
    socket?.on('timeout', () => socket.destroy(new SocketStallError(stallMs)));
    return socket;
  };
  return agent;
}

/** A keep-alive agent (http or https) whose sockets fail after `stallMs` without traffic; see {@link withStallDeadline}. */
export function createStallAgent(useSSL: boolean, stallMs: number): HttpAgent {
  const opts = { keepAlive: true, timeout: stallMs };
  return withStallDeadline(useSSL ? new HttpsAgent(opts) : new HttpAgent(opts), stallMs);
}

/**
 * Turns the socket deadline off for a response whose headers arrived (the
 * body is guarded by {@link guardStalls} while it is awaited). `body` is the
 * `minio` client's response stream, Node's IncomingMessage.
 */
export function releaseSocketDeadline(body: unknown): void {
  const socket = (body as { socket?: Socket | null }).socket;
  socket?.setTimeout(0);
}

/**
 * Yields the chunks of `body`, failing with `stallError()` when a chunk that
 * was asked for does not come within `stallMs`: the body is destroyed with
 * that error (which aborts the request and closes its socket). Time the
 * consumer spends between chunks does not count. Ending early (break, throw)
 * destroys the body too.
 */
export async function* guardStalls(
  body: AsyncIterable<Uint8Array> & { destroy(err?: Error): unknown },
  stallMs: number,
  stallError: () => Error,
): AsyncGenerator<Uint8Array> {
  const chunks = body[Symbol.asyncIterator]();
  try {
    for (;;) {
      const timer = setTimeout(() => body.destroy(stallError()), stallMs);
      let r: IteratorResult<Uint8Array>;
      try {
        r = await chunks.next();
      } finally {
        clearTimeout(timer);
      }
      if (r.done === true) return;
      yield r.value;
    }
  } finally {
    // A Readable's iterator destroys the stream on return(); after an error or the end it is a no-op.
    await chunks.return?.();
  }
}
