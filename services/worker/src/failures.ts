import { ModelError, type ModelErrorCode } from '@cvc/model';

/** ModelError codes that the same task would meet again on every delivery: the data, the checkpoint or the numbers are at fault. */
const PERMANENT_MODEL_CODES: ReadonlySet<ModelErrorCode> = new Set<ModelErrorCode>([
  'CHECKPOINT_CORRUPT',
  'CHECKPOINT_MISMATCH',
  'SHAPE_MISMATCH',
  'EMPTY_DATA',
  'LOSS_NOT_FINITE',
]);

/**
 * Whether an attempt's failure is one another delivery would only repeat (a
 * NaN loss from a deterministic, resumable training; a corrupt or mismatched
 * checkpoint; data of the wrong shape): such a failure is final at once
 * instead of costing max_deliver - 1 more attempts.
 */
export function isPermanentFailure(err: unknown): boolean {
  return err instanceof ModelError && PERMANENT_MODEL_CODES.has(err.code);
}
