import { meanStd } from '@cvc/core';
import { FoldState, RunState, type FoldStatus, type Run, type RunSummary } from '@cvc/proto';
import { ENDING_RUN_STATES, FINAL_FOLD_STATES } from './run-doc.js';

// How a run ends, as pure functions of its state (used inside compare-and-set updates, which may run more than once).

/** The folds that succeeded with validation metrics, and the one with the lowest validation loss. */
export function succeededFolds(run: Run): { ok: FoldStatus[]; best: FoldStatus | undefined } {
  const ok = run.folds.filter((f) => f.state === FoldState.FOLD_STATE_SUCCEEDED && f.val);
  const best = ok.length === 0 ? undefined : ok.reduce((b, f) => ((f.val?.loss ?? Infinity) < (b.val?.loss ?? Infinity) ? f : b));
  return { ok, best };
}

/** Mean and std of the succeeded folds' losses. */
export function summarize(ok: readonly FoldStatus[], best: FoldStatus, encoder: string): RunSummary {
  const ms = (pick: (f: FoldStatus) => number): { mean: number; std: number } => {
    const m = meanStd(ok.map(pick));
    return { mean: m.mean, std: m.std };
  };
  return {
    trainLoss: ms((f) => f.train?.loss ?? NaN),
    valLoss: ms((f) => f.val?.loss ?? NaN),
    testLoss: ms((f) => f.test?.loss ?? NaN),
    bestFold: best.fold,
    encoder,
  };
}

/** A fold left RUNNING: it has no progress inside an epoch any more. */
export function endAttempt(f: FoldStatus, state: FoldState, extra: Partial<FoldStatus> = {}): FoldStatus {
  return { ...f, ...extra, state, progress: undefined };
}

/** Once every fold has ended, a run that was training moves to FINALIZING (in the same update that ended its last fold). */
export function finalizingIfDone(run: Run): Run {
  if (ENDING_RUN_STATES.includes(run.state) || !run.folds.every((f) => FINAL_FOLD_STATES.includes(f.state))) return run;
  return { ...run, state: RunState.RUN_STATE_FINALIZING };
}
