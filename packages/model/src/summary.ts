import { meanStd, type MeanStd } from '@cvc/core';
import type { EvalMetrics } from './history.js';

/** One fold's final numbers as the run summary lists them. */
export interface FoldSummary {
  readonly fold: number;
  readonly bestEpoch: number;
  readonly metrics: { readonly train: EvalMetrics; readonly val: EvalMetrics; readonly test: EvalMetrics };
}

/** Mean +- std over folds of each split's loss and metrics, as in SEED-MODELS.md. */
export interface CvSummary {
  readonly folds: readonly FoldSummary[];
  readonly loss: { readonly train: MeanStd; readonly val: MeanStd; readonly test: MeanStd };
  readonly mse: { readonly train: MeanStd; readonly val: MeanStd; readonly test: MeanStd };
  readonly cosine?: { readonly train: MeanStd; readonly val: MeanStd; readonly test: MeanStd };
  /** The fold with the lowest validation loss. */
  readonly bestFold: number;
}

export function summarizeFolds(folds: readonly FoldSummary[]): CvSummary {
  if (folds.length === 0) throw new Error('summarizeFolds needs at least one fold');
  const over = (pick: (m: EvalMetrics) => number | undefined): { train: MeanStd; val: MeanStd; test: MeanStd } => ({
    train: meanStd(folds.map((f) => pick(f.metrics.train) ?? Number.NaN)),
    val: meanStd(folds.map((f) => pick(f.metrics.val) ?? Number.NaN)),
    test: meanStd(folds.map((f) => pick(f.metrics.test) ?? Number.NaN)),
  });
  const hasCos = folds.every((f) => f.metrics.val.cosine !== undefined);
  const best = folds.reduce((b, f) => (f.metrics.val.loss < b.metrics.val.loss ? f : b));
  return {
    folds,
    loss: over((m) => m.loss),
    mse: over((m) => m.mse),
    ...(hasCos ? { cosine: over((m) => m.cosine) } : {}),
    bestFold: best.fold,
  };
}
