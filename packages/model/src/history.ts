/** One epoch of training as recorded in a fold's history. */
export interface EpochRecord {
  /** 1-based epoch number. */
  readonly epoch: number;
  /** Mean training loss over the epoch's batches (training mode). */
  readonly loss: number;
  /** Validation loss (inference mode, moving batch-norm statistics). */
  readonly valLoss: number;
  readonly valMse: number;
  readonly valCosine?: number;
  /** Wall time of the training pass in seconds. */
  readonly seconds: number;
  readonly imagesPerSec: number;
}

/** Loss and metrics of one evaluation pass. */
export interface EvalMetrics {
  readonly loss: number;
  readonly mse: number;
  readonly cosine?: number;
  readonly count: number;
}
