import { DataError, type DataErrorCode } from '@cvc/data';
import { ModelError, type ModelErrorCode } from '@cvc/model';
import { StorageError } from '@cvc/storage';

/** ModelError codes that the same task would meet again on every delivery: the data, the checkpoint or the numbers are at fault. */
const PERMANENT_MODEL_CODES: ReadonlySet<ModelErrorCode> = new Set<ModelErrorCode>([
  'CHECKPOINT_CORRUPT',
  'CHECKPOINT_MISMATCH',
  'SHAPE_MISMATCH',
  'EMPTY_DATA',
  'LOSS_NOT_FINITE',
]);

/**
 * DataError codes that say the dataset itself is malformed: a manifest that
 * does not parse, or a shard whose bytes matched the manifest's sha256 and
 * still do not decode (so every worker reads the same bytes and fails the
 * same way). A missing object, a download whose bytes differ from the
 * manifest (SHARD_CHECKSUM: possibly a broken transfer), a shard format this
 * worker is too old for (SHARD_BAD_VERSION, during a rolling upgrade) and
 * a local cache problem may go away, so they are retried as before.
 */
const PERMANENT_DATA_CODES: ReadonlySet<DataErrorCode> = new Set<DataErrorCode>([
  'MANIFEST_CORRUPT',
  'SHARD_TRUNCATED',
  'SHARD_BAD_MAGIC',
  'SHARD_CORRUPT',
  'SHARD_EMPTY',
  'SHARD_BAD_INDEX',
  'SHAPE_MISMATCH',
]);

/**
 * Whether an attempt's failure is one another delivery would only repeat (a
 * NaN loss from a deterministic, resumable training; a corrupt or mismatched
 * checkpoint; data of the wrong shape; a malformed dataset): such a failure
 * is final at once instead of costing max_deliver - 1 more attempts.
 */
export function isPermanentFailure(err: unknown): boolean {
  if (err instanceof ModelError) return PERMANENT_MODEL_CODES.has(err.code);
  return err instanceof DataError && PERMANENT_DATA_CODES.has(err.code);
}

/**
 * Whether a resume checkpoint failed to load because of the checkpoint
 * itself: the object is gone (StorageError NOT_FOUND: a lifecycle rule, a
 * manual delete), or it does not decode or fit the fold's model (ModelError
 * CHECKPOINT_CORRUPT, CHECKPOINT_MISMATCH). Another delivery would meet the
 * same object; the fold falls back to an older checkpoint instead.
 */
export function isBadCheckpoint(err: unknown): boolean {
  if (err instanceof ModelError) return err.code === 'CHECKPOINT_CORRUPT' || err.code === 'CHECKPOINT_MISMATCH';
  return err instanceof StorageError && err.code === 'NOT_FOUND';
}
