import { CvcError } from '@cvc/core';

/** An object-storage problem: a bad key, a missing object, a checksum mismatch, S3 unreachable. */
export class StorageError extends CvcError {
  readonly key: string | undefined;

  constructor(code: string, message: string, key?: string, options?: { cause?: unknown }) {
    super(code, key === undefined ? message : `${key}: ${message}`, options);
    this.key = key;
  }
}
