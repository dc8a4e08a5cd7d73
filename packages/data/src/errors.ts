import { CvcError } from '@cvc/core';

/** What is wrong with a dataset file, shard or manifest. */
export type DataErrorCode =
  | 'FILE_MISSING'
  | 'FILE_UNREADABLE'
  | 'GZIP_CORRUPT'
  | 'GZIP_TOO_LARGE'
  | 'IDX_TRUNCATED'
  | 'IDX_BAD_MAGIC'
  | 'IDX_BAD_TYPE'
  | 'IDX_BAD_DIMS'
  | 'IDX_TRAILING'
  | 'IDX_COUNT_MISMATCH'
  | 'IDX_BAD_LABEL'
  | 'CIFAR_EMPTY'
  | 'CIFAR_TRUNCATED'
  | 'CIFAR_BAD_LABEL'
  | 'TAR_CORRUPT'
  | 'TAR_TRUNCATED'
  | 'SHAPE_MISMATCH'
  | 'MANIFEST_MISSING'
  | 'MANIFEST_CORRUPT'
  | 'SHARD_MISSING'
  | 'SHARD_TRUNCATED'
  | 'SHARD_BAD_MAGIC'
  | 'SHARD_BAD_VERSION'
  | 'SHARD_CORRUPT'
  | 'SHARD_CHECKSUM'
  | 'SHARD_EMPTY'
  | 'SHARD_BAD_INDEX'
  | 'CHECKSUM_MISMATCH'
  | 'DOWNLOAD_FAILED'
  | 'DATASET_UNKNOWN'
  | 'DATASET_NOT_FOUND'
  | 'DATASET_UNRECOGNISED'
  | 'IMAGE_UNDECODABLE'
  | 'IMAGE_EMPTY'
  | 'IMAGE_TRUNCATED'
  | 'IMAGE_CHANGED'
  | 'NOT_AN_IMAGE'
  | 'PATH_ESCAPES'
  | 'SYMLINK_LOOP'
  | 'IMAGE_FOLDER_EMPTY'
  | 'IMAGE_FOLDER_INVALID'
  | 'SOURCES_CORRUPT'
  | 'IMAGE_DECODER_MISSING';

/** A dataset file, shard or manifest is missing, malformed or corrupt. */
export class DataError extends CvcError<DataErrorCode> {
  /** The file or object the problem is in, when there is one. */
  readonly file: string | undefined;

  constructor(code: DataErrorCode, message: string, file?: string, options?: { cause?: unknown }) {
    super(code, file === undefined ? message : `${file}: ${message}`, options);
    this.file = file;
  }
}
