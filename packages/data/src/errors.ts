import { CvcError } from '@cvc/core';

/** A dataset file, shard or manifest is missing, malformed or corrupt. */
export class DataError extends CvcError {
  /** The file or object the problem is in, when there is one. */
  readonly file: string | undefined;

  constructor(code: string, message: string, file?: string, options?: { cause?: unknown }) {
    super(code, file === undefined ? message : `${file}: ${message}`, options);
    this.file = file;
  }
}
