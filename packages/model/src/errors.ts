import { CvcError } from '@cvc/core';

/** What went wrong with a model, a checkpoint, an encoder or training. */
export type ModelErrorCode =
  | 'CHECKPOINT_CORRUPT'
  | 'CHECKPOINT_CHECKSUM'
  | 'CHECKPOINT_MISMATCH'
  | 'ENCODER_UNREADABLE'
  | 'SHAPE_MISMATCH'
  | 'EMPTY_DATA'
  | 'NO_EPOCHS'
  | 'LOSS_NOT_FINITE'
  | 'CODES_NOT_FINITE'
  | 'EXPORT_FAILED'
  | 'ABORTED';

/** A model, checkpoint or training problem. */
export class ModelError extends CvcError<ModelErrorCode> {}
