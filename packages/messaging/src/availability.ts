import { JetStreamApiError, JetStreamError } from '@nats-io/jetstream';
import { ClosedConnectionError, ConnectionError, DrainingConnectionError, NoRespondersError, RequestError, TimeoutError } from '@nats-io/nats-core';

/**
 * JetStream API error codes (nats-server's errors.json) that mean "not now":
 * the cluster has no meta leader or the asset's group has no leader yet.
 * nats.js' `JetStreamApiCodes` names only a few codes, so these are listed here.
 */
export const JETSTREAM_UNAVAILABLE_CODES: ReadonlySet<number> = new Set([
  10008, // JSClusterNotAvailErr: JetStream system temporarily unavailable
  10009, // JSClusterNotLeaderErr: JetStream cluster can not handle request
  10118, // JSStreamOfflineErr: stream is offline
  10119, // JSConsumerOfflineErr: consumer is offline
  10194, // JSStreamOfflineReasonErrF: stream is offline: {err}
]);

/**
 * True when `err` means NATS was unreachable or did not answer in time (a
 * broker restart, a network blink, a JetStream leader election): the
 * operation may succeed if retried. Recognised by type and JetStream error
 * code only, never by message text; an error's `cause` chain is followed.
 */
export function isNatsUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (
      e instanceof TimeoutError ||
      e instanceof ConnectionError ||
      e instanceof ClosedConnectionError ||
      e instanceof DrainingConnectionError ||
      e instanceof NoRespondersError ||
      e instanceof RequestError
    ) {
      return true;
    }
    // By code, not by the HTTP-like status: "JetStream not enabled" (10039, 10076) is a 503 too, and permanent.
    if (e instanceof JetStreamApiError) return JETSTREAM_UNAVAILABLE_CODES.has(e.code);
    // A pull request's 503 status (nats.js' JetStreamStatusError, a JetStreamError with a numeric code): no JetStream server answered.
    if (e instanceof JetStreamError && (e as { code?: unknown }).code === 503) return true;
    // nats.js raises JetStreamNotEnabled both when the account lacks JetStream
    // (cause: API error 10039, permanent) and when no JetStream server answered
    // (cause: a no-responders RequestError, transient): the cause decides, on the next turn.
    if (!(e instanceof Error)) return false;
  }
  return false;
}
