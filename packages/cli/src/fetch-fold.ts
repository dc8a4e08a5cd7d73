import type { FoldStatus } from '@cvc/proto';
import { RemoteError } from './errors.js';

/**
 * How `cvc encoder fetch` picks the fold whose encoder it writes: the one
 * named by `--fold`, the best validation loss, or the best accuracy of
 * `accuracy` (k-means on the test split's codes) over every finished fold.
 */
export type FoldChoice =
  | { readonly by: 'fold'; readonly fold: number }
  | { readonly by: 'val-loss' }
  | { readonly by: 'cluster-acc'; readonly accuracy: (checkpoint: Uint8Array, fold: number) => Promise<number> };

/** The chosen fold, its best checkpoint's bytes and, for cluster-acc, each fold's accuracy (`fold0`, `fold1`, ...). */
export interface ChosenFold {
  readonly fold: number;
  readonly checkpoint: Uint8Array;
  readonly selection: Record<string, number>;
}

/**
 * Picks the fold among `done` (the finished folds, at least one) and returns
 * its checkpoint. Each checkpoint is downloaded once: cluster-acc scores
 * every fold's and keeps the best one's bytes (at most two in memory), so
 * the chosen fold is not downloaded again.
 */
export async function chooseFold(done: readonly FoldStatus[], choice: FoldChoice, download: (fold: number) => Promise<Uint8Array>): Promise<ChosenFold> {
  if (choice.by === 'fold') return { fold: choice.fold, checkpoint: await download(choice.fold), selection: {} };
  if (choice.by === 'val-loss') {
    const fold = done.reduce((b, f) => ((f.val?.loss ?? Infinity) < (b.val?.loss ?? Infinity) ? f : b)).fold;
    return { fold, checkpoint: await download(fold), selection: {} };
  }
  const selection: Record<string, number> = {};
  let best: { fold: number; acc: number; checkpoint: Uint8Array } | undefined;
  for (const f of done) {
    const checkpoint = await download(f.fold);
    const acc = await choice.accuracy(checkpoint, f.fold);
    selection[`fold${f.fold}`] = acc;
    if (!best || acc > best.acc) best = { fold: f.fold, acc, checkpoint };
  }
  if (!best) throw new RemoteError('NO_FOLDS', 'the run has no finished fold yet');
  return { fold: best.fold, checkpoint: best.checkpoint, selection };
}
