import { ClosedConnectionError, ConnectionError, DrainingConnectionError, NoRespondersError, RequestError, TimeoutError } from '@nats-io/nats-core';

/**
 * True when `err` means NATS was unreachable or did not answer in time (a
 * broker restart, a network blink): the operation may succeed if retried.
 */
export function isNatsUnavailable(err: unknown): boolean {
  if (
    err instanceof TimeoutError ||
    err instanceof ConnectionError ||
    err instanceof ClosedConnectionError ||
    err instanceof DrainingConnectionError ||
    err instanceof NoRespondersError ||
    err instanceof RequestError
  ) {
    return true;
  }
  const e = err as { name?: string; message?: string; cause?: unknown };
  if (/JetStream.*(not|temporarily).*available|no responders|disconnect/i.test(e.message ?? '')) return true;
  return e.cause !== undefined && e.cause !== err && isNatsUnavailable(e.cause);
}
