import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';

// JetStream conditions recognised by nats.js' typed API errors (the server's
// err_code), never by message text.

/** True when `err` is JetStream's answer with API error code `code`. */
export function isJetStreamApiError(err: unknown, code: number): err is JetStreamApiError {
  return err instanceof JetStreamApiError && err.code === code;
}

/** A KV compare-and-set (or create) lost: the key's last revision was not the one expected. */
export function isWrongLastSequence(err: unknown): boolean {
  return isJetStreamApiError(err, JetStreamApiCodes.StreamWrongLastSequence) || isJetStreamApiError(err, JetStreamApiCodes.StreamWrongLastSequenceUnknown);
}

/** JetStream's JSStreamMessageExceedsMaximumErr (not among nats.js' named codes). */
const STREAM_MESSAGE_EXCEEDS_MAXIMUM = 10054;

/** A message over the stream's largest message size (a KV bucket's max value size). */
export function isMessageTooLarge(err: unknown): boolean {
  return isJetStreamApiError(err, STREAM_MESSAGE_EXCEEDS_MAXIMUM);
}

/** The stream does not exist. */
export function isStreamNotFound(err: unknown): boolean {
  return isJetStreamApiError(err, JetStreamApiCodes.StreamNotFound);
}

/** The consumer does not exist. */
export function isConsumerNotFound(err: unknown): boolean {
  return isJetStreamApiError(err, JetStreamApiCodes.ConsumerNotFound);
}

/** The stream has no message with the sequence asked for (already removed). */
export function isNoMessageFound(err: unknown): boolean {
  return isJetStreamApiError(err, JetStreamApiCodes.NoMessageFound);
}
