import type { ImageSet } from '@cvc/data';
import { FoldTrainer, type EpochRecord, type EvalMetrics, type FitCallbacks, type TrainConfigInput } from '@cvc/model';

/** The callbacks the worker hands to `fit` (a subset of FoldTrainer's). */
export interface WorkerFitCallbacks extends Pick<FitCallbacks, 'signal' | 'onStep' | 'onBatch' | 'progressIntervalMs'> {
  /** Called after each epoch; the epoch's state is the trainer's until the promise settles. */
  readonly onEpochEnd?: (r: EpochRecord) => void | Promise<void>;
}

/** What the worker needs of a fold's trainer; `FoldTrainer` is the real one. */
export interface WorkerTrainer {
  /** Epochs finished so far (more than 0 after a resume). */
  readonly epochsDone: number;
  /** The epoch with the lowest validation loss, or null before the first epoch. */
  readonly bestEpoch: { epoch: number; valLoss: number } | null;
  /** Trains until the configured epoch count is done; rejects with CancelledError when `signal` aborts. */
  fit(data: { train: ImageSet; val: ImageSet }, cb: WorkerFitCallbacks): Promise<unknown>;
  /** Loads the weights of `bestEpoch`. */
  restoreBest(): void;
  /** Loss and metrics on `set`; rejects with CancelledError when `opts.signal` aborts (between batches). */
  evaluate(set: ImageSet, opts?: { signal?: AbortSignal }): Promise<EvalMetrics>;
  /** Serialises the whole training state (resumable by `TrainerFactory.resume`). */
  checkpoint(): Promise<Uint8Array>;
  dispose(): void;
}

/** Makes a fold's trainer, fresh or from a checkpoint. */
export interface TrainerFactory {
  create(config: TrainConfigInput): WorkerTrainer;
  /** `name` names the checkpoint in errors; `epochs` overrides the checkpoint's epoch count. */
  resume(bytes: Uint8Array, name: string, opts: { epochs?: number }): Promise<WorkerTrainer>;
}

/** The real trainer: TensorFlow.js on the initialised backend. */
export const foldTrainerFactory: TrainerFactory = {
  create: (config) => FoldTrainer.create(config),
  resume: (bytes, name, opts) => FoldTrainer.resume(bytes, name, opts),
};
