import { CvcError } from '@cvc/core';

/**
 * Why an object-storage operation failed. `UNAVAILABLE`: S3 could not be
 * reached or kept answering 5xx until the retry deadline (worth retrying
 * later); `S3_ERROR`: S3 refused the request for another reason (a 4xx, an
 * access problem: retrying does not help).
 */
export type StorageErrorCode =
  | 'NOT_FOUND'
  | 'UNAVAILABLE'
  | 'S3_ERROR'
  | 'CHECKSUM_MISMATCH'
  | 'KEY_INVALID'
  | 'NAME_INVALID'
  | 'CATALOG_CORRUPT'
  | 'DATASET_NOT_IMPORTED'
  | 'FOLDS_MISMATCH';

/** An object-storage problem: a bad key, a missing object, a checksum mismatch, S3 unreachable. */
export class StorageError extends CvcError<StorageErrorCode> {
  readonly key: string | undefined;

  constructor(code: StorageErrorCode, message: string, key?: string, options?: { cause?: unknown }) {
    super(code, key === undefined ? message : `${key}: ${message}`, options);
    this.key = key;
  }
}

/**
 * An object read that got no bytes for its stall deadline (the connection
 * open, the server silent: before the response headers or mid-body). The
 * request was aborted; code `UNAVAILABLE`, so callers treat it as the
 * retryable failure it is (the store itself retries it within its retry
 * budget first).
 */
export class StorageStallError extends StorageError {
  readonly bucket: string;
  /** The stall deadline that ran out, in seconds. */
  readonly stallSeconds: number;

  constructor(bucket: string, key: string, stallMs: number, options?: { cause?: unknown; what?: string }) {
    super(
      'UNAVAILABLE',
      `${options?.what ?? 'read'} ${options?.what === 'write' ? 'to' : 'from'} bucket ${bucket} stalled: no bytes for ${stallMs / 1000} s, request aborted (CVC_S3_STALL_TIMEOUT_MS)`,
      key,
      options,
    );
    this.bucket = bucket;
    this.stallSeconds = stallMs / 1000;
  }
}
