import { Metadata, status, type ServerErrorResponse } from '@grpc/grpc-js';
import { CancelledError, ConfigError, CvcError, describeError } from '@cvc/core';
import { DataError, type DataErrorCode } from '@cvc/data';
import { MessagingError, isNatsUnavailable, type MessagingErrorCode } from '@cvc/messaging';
import { ModelError, type ModelErrorCode } from '@cvc/model';
import { RETRY_AFTER_MS_KEY } from '@cvc/proto';
import { AuthError } from '@cvc/security';
import { StorageError, type StorageErrorCode } from '@cvc/storage';
import { CoordinatorError, UploadsBusyError, type Outcome } from './errors.js';

// Every code of every package that can reach the edge is mapped here on
// purpose (the Records are exhaustive: a new code does not compile until it
// is placed). The rules: UNAVAILABLE only for real unavailability (S3
// unreachable, NATS down), because workers retry it; corrupt or mismatched
// stored data is DATA_LOSS; a state that must change first is
// FAILED_PRECONDITION; anything unexpected is INTERNAL.

const outcomeStatus: Record<Outcome, status> = {
  NOT_FOUND: status.NOT_FOUND,
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  CANCELLED: status.CANCELLED,
  DATA_LOSS: status.DATA_LOSS,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  UNAVAILABLE: status.UNAVAILABLE,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
};

/** Object storage's codes at the edge. */
export const storageStatus: Record<StorageErrorCode, status> = {
  NOT_FOUND: status.NOT_FOUND,
  // S3 unreachable or 5xx past the retry deadline: the one retryable storage failure.
  UNAVAILABLE: status.UNAVAILABLE,
  // S3 refused the request (credentials, permissions, a 4xx): a retry gets the same answer.
  S3_ERROR: status.INTERNAL,
  CHECKSUM_MISMATCH: status.DATA_LOSS,
  KEY_INVALID: status.INVALID_ARGUMENT,
  NAME_INVALID: status.INVALID_ARGUMENT,
  CATALOG_CORRUPT: status.DATA_LOSS,
  DATASET_NOT_IMPORTED: status.NOT_FOUND,
  FOLDS_MISMATCH: status.FAILED_PRECONDITION,
};

/** Dataset codes at the edge: corrupt stored data is DATA_LOSS, a missing file NOT_FOUND. */
export const dataStatus: Record<DataErrorCode, status> = {
  FILE_MISSING: status.NOT_FOUND,
  FILE_UNREADABLE: status.INTERNAL,
  GZIP_CORRUPT: status.DATA_LOSS,
  GZIP_TOO_LARGE: status.RESOURCE_EXHAUSTED,
  IDX_TRUNCATED: status.DATA_LOSS,
  IDX_BAD_MAGIC: status.DATA_LOSS,
  IDX_BAD_TYPE: status.DATA_LOSS,
  IDX_BAD_DIMS: status.DATA_LOSS,
  IDX_TRAILING: status.DATA_LOSS,
  IDX_COUNT_MISMATCH: status.DATA_LOSS,
  IDX_BAD_LABEL: status.DATA_LOSS,
  CIFAR_EMPTY: status.DATA_LOSS,
  CIFAR_TRUNCATED: status.DATA_LOSS,
  CIFAR_BAD_LABEL: status.DATA_LOSS,
  TAR_CORRUPT: status.DATA_LOSS,
  TAR_TRUNCATED: status.DATA_LOSS,
  SHAPE_MISMATCH: status.FAILED_PRECONDITION,
  MANIFEST_MISSING: status.NOT_FOUND,
  MANIFEST_CORRUPT: status.DATA_LOSS,
  SHARD_MISSING: status.NOT_FOUND,
  SHARD_TRUNCATED: status.DATA_LOSS,
  SHARD_BAD_MAGIC: status.DATA_LOSS,
  SHARD_BAD_VERSION: status.FAILED_PRECONDITION,
  SHARD_CORRUPT: status.DATA_LOSS,
  SHARD_CHECKSUM: status.DATA_LOSS,
  SHARD_EMPTY: status.FAILED_PRECONDITION,
  SHARD_BAD_INDEX: status.INTERNAL,
  CHECKSUM_MISMATCH: status.DATA_LOSS,
  DOWNLOAD_FAILED: status.INTERNAL,
  DATASET_UNKNOWN: status.NOT_FOUND,
  DATASET_NOT_FOUND: status.NOT_FOUND,
  DATASET_UNRECOGNISED: status.FAILED_PRECONDITION,
  IMAGE_UNDECODABLE: status.INVALID_ARGUMENT,
  IMAGE_EMPTY: status.INVALID_ARGUMENT,
  IMAGE_TRUNCATED: status.INVALID_ARGUMENT,
  IMAGE_CHANGED: status.ABORTED,
  NOT_AN_IMAGE: status.INVALID_ARGUMENT,
  PATH_ESCAPES: status.INVALID_ARGUMENT,
  SYMLINK_LOOP: status.INVALID_ARGUMENT,
  IMAGE_FOLDER_EMPTY: status.INVALID_ARGUMENT,
  IMAGE_FOLDER_INVALID: status.INVALID_ARGUMENT,
  SOURCES_CORRUPT: status.DATA_LOSS,
  IMAGE_DECODER_MISSING: status.FAILED_PRECONDITION,
};

/** Model and checkpoint codes at the edge. */
export const modelStatus: Record<ModelErrorCode, status> = {
  CHECKPOINT_CORRUPT: status.DATA_LOSS,
  CHECKPOINT_CHECKSUM: status.DATA_LOSS,
  CHECKPOINT_MISMATCH: status.FAILED_PRECONDITION,
  ENCODER_UNREADABLE: status.FAILED_PRECONDITION,
  SHAPE_MISMATCH: status.INVALID_ARGUMENT,
  EMPTY_DATA: status.FAILED_PRECONDITION,
  NO_EPOCHS: status.FAILED_PRECONDITION,
  LOSS_NOT_FINITE: status.FAILED_PRECONDITION,
  CODES_NOT_FINITE: status.FAILED_PRECONDITION,
  EXPORT_FAILED: status.INTERNAL,
  // A fine-tune stopped by its signal (a cancelled clustering job, a stopping worker).
  ABORTED: status.CANCELLED,
};

/** Messaging codes at the edge (NATS being unreachable is recognised separately, by type). */
export const messagingStatus: Record<MessagingErrorCode, status> = {
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  // Compare-and-set kept losing: a concurrency conflict, which gRPC calls ABORTED.
  CONFLICT: status.ABORTED,
  TASK_MALFORMED: status.INTERNAL,
  NATS_START: status.INTERNAL,
  // CVC_NATS_REPLICAS asks for more copies than the NATS cluster can keep: a deployment setting to fix, not a retry.
  NATS_REPLICAS: status.FAILED_PRECONDITION,
  // A document over the NATS server's max_payload: the request is too big for the deployment, retrying cannot help.
  TOO_LARGE: status.RESOURCE_EXHAUSTED,
};

type Status = Partial<ServerErrorResponse> & { code: status };

/** Maps typed errors to gRPC status codes; only here, at the edge. */
export function toStatus(err: unknown): Status {
  if (err instanceof AuthError) return { code: err.kind === 'UNAUTHENTICATED' ? status.UNAUTHENTICATED : status.PERMISSION_DENIED, details: err.message };
  if (err instanceof UploadsBusyError) {
    const metadata = new Metadata();
    metadata.set(RETRY_AFTER_MS_KEY, String(err.retryAfterMs));
    return { code: status.RESOURCE_EXHAUSTED, details: err.message, metadata };
  }
  if (err instanceof CoordinatorError) return { code: outcomeStatus[err.outcome], details: err.message };
  if (err instanceof StorageError) return { code: storageStatus[err.code], details: err.message };
  if (err instanceof DataError) return { code: dataStatus[err.code], details: err.message };
  if (err instanceof ModelError) return { code: modelStatus[err.code], details: err.message };
  if (err instanceof MessagingError) return { code: messagingStatus[err.code], details: err.message };
  if (err instanceof ConfigError) return { code: status.INVALID_ARGUMENT, details: err.message };
  if (err instanceof CancelledError) return { code: status.CANCELLED, details: err.message };
  // Workers retry UNAVAILABLE, so a broker restart or leader election does not fail a fold attempt.
  if (isNatsUnavailable(err)) return { code: status.UNAVAILABLE, details: `run state temporarily unavailable (NATS): ${describeError(err)}` };
  if (err instanceof CvcError) return { code: status.INTERNAL, details: err.message };
  return { code: status.INTERNAL, details: `internal error: ${describeError(err)}` };
}
