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
