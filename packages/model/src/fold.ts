import type { ImageSet } from '@cvc/data';
import type { FitCallbacks, FoldTrainer } from './trainer.js';
import type { EpochRecord, EvalMetrics } from './history.js';
import { ModelError } from './errors.js';

export interface FoldData {
  readonly train: ImageSet;
  readonly val: ImageSet;
  readonly test: ImageSet;
}

/** What one fold's training produced, evaluated with its best weights. */
export interface FoldResult {
  readonly history: readonly EpochRecord[];
  readonly bestEpoch: number;
  readonly bestValLoss: number;
  readonly metrics: { readonly train: EvalMetrics; readonly val: EvalMetrics; readonly test: EvalMetrics };
  /** Checkpoint whose current weights are the best ones. */
  readonly bestCheckpoint: Uint8Array;
}

/**
 * The seed's protocol for one fold: train all epochs validating on the
 * held-out fold, reload the weights with the lowest validation loss, then
 * evaluate them on the training, validation and test sets.
 */
export async function runFold(trainer: FoldTrainer, data: FoldData, cb: FitCallbacks & { onEvaluate?: (split: string) => void } = {}): Promise<FoldResult> {
  const history = await trainer.fit({ train: data.train, val: data.val }, cb);
  const best = trainer.bestEpoch;
  if (best === null) throw new ModelError('NO_EPOCHS', 'training ran no epoch');
  trainer.restoreBest();
  cb.onEvaluate?.('train');
  const train = await trainer.evaluate(data.train);
  cb.onEvaluate?.('val');
  const val = await trainer.evaluate(data.val);
  cb.onEvaluate?.('test');
  const test = await trainer.evaluate(data.test);
  return { history: [...history], bestEpoch: best.epoch, bestValLoss: best.valLoss, metrics: { train, val, test }, bestCheckpoint: await trainer.checkpoint() };
}
