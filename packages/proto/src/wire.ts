// Wire constants shared by the coordinator, the worker, the CLI, benchmarks
// and tests. Hand-written beside the generated code (src/gen is never edited).

/** Size of one data chunk in a checkpoint upload or download stream: 1 MiB. */
export const CHECKPOINT_CHUNK_BYTES = 1 << 20;

/**
 * Largest gRPC message either side sends or accepts: 4 MiB (grpc-js'
 * default receive limit), room for a chunk plus its framing.
 */
export const MAX_GRPC_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * Trailing-metadata key on a RESOURCE_EXHAUSTED that is worth retrying: the
 * value is how many milliseconds the client should wait first (a decimal
 * integer string).
 */
export const RETRY_AFTER_MS_KEY = 'cvc-retry-after-ms';

/** grpc-js channel/server options that apply `MAX_GRPC_MESSAGE_BYTES` both ways. */
export const MESSAGE_SIZE_OPTIONS = {
  'grpc.max_send_message_length': MAX_GRPC_MESSAGE_BYTES,
  'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES,
} as const;
