import { meanStd } from '@cvc/core';
import { FoldState, RunSpec, RunState, Sweep, SweepState, type MeanStd, type Run } from '@cvc/proto';

/** What the coordinator keeps per sweep in its KV bucket (cvc_sweeps). */
export interface SweepDoc {
  readonly sweep: Sweep;
  /** The run spec of each trial, by index, fixed at submission (the dataset version pinned). */
  readonly specs: RunSpec[];
  /** Set once a CANCELLED sweep has no run still going: nothing is left to do, so recover() no longer takes it up. */
  readonly cancelDone?: boolean;
}

export const sweepKey = (id: string): string => `sweep.${id}`;

/** The run id of a sweep's trial: fixed, so starting a trial twice finds the first run. */
export const trialRunId = (sweepId: string, index: number): string => `${sweepId}-t${index}`;

export const FINAL_SWEEP_STATES: readonly SweepState[] = [SweepState.SWEEP_STATE_SUCCEEDED, SweepState.SWEEP_STATE_FAILED, SweepState.SWEEP_STATE_CANCELLED];

/** True when nothing is left to do for the sweep, ever: final, and when CANCELLED its runs' clean-up done (recover() skips it). */
export const sweepSettled = (doc: SweepDoc): boolean =>
  FINAL_SWEEP_STATES.includes(doc.sweep.state) && (doc.sweep.state !== SweepState.SWEEP_STATE_CANCELLED || doc.cancelDone === true);

/** Restores proto defaults after a JSON round trip. */
export function decodeSweepDoc(doc: SweepDoc): SweepDoc {
  return { sweep: Sweep.fromPartial(doc.sweep), specs: doc.specs.map((s) => RunSpec.fromPartial(s)), ...(doc.cancelDone ? { cancelDone: true } : {}) };
}

/** Per rung epoch that every fold has reported: the validation losses of the folds at it. */
export function rungLosses(run: Run, rungs: readonly number[]): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const r of rungs) {
    const losses = run.folds.map((f) => f.history.find((h) => h.epoch === r)?.valLoss);
    if (losses.length > 0 && losses.every((l): l is number => l !== undefined && Number.isFinite(l))) out.set(r, losses);
  }
  return out;
}

/** A run's score at each rung every fold has reached: the mean validation loss over its folds. */
export function rungScores(run: Run, rungs: readonly number[]): Map<number, number> {
  return new Map([...rungLosses(run, rungs)].map(([r, l]) => [r, meanStd(l).mean]));
}

/** The highest epoch every fold of the run has reported (0 when a fold has reported none). */
export function epochsReached(run: Run): number {
  return Math.min(...run.folds.map((f) => Math.max(0, ...f.history.map((h) => h.epoch))));
}

/** Mean and std over folds of the final validation loss (a finished run), or at its highest rung reached (a stopped one). */
export function trialValLoss(run: Run, rungs: readonly number[]): MeanStd | undefined {
  if (run.state === RunState.RUN_STATE_SUCCEEDED && run.summary?.valLoss) return run.summary.valLoss;
  const losses = [...rungLosses(run, rungs)].at(-1)?.[1];
  if (!losses) return undefined;
  const m = meanStd(losses);
  return { mean: m.mean, std: m.std };
}

/** True when the run needs nothing more (final, stopped early included). */
export const runEnded = (run: Run): boolean =>
  [RunState.RUN_STATE_SUCCEEDED, RunState.RUN_STATE_FAILED, RunState.RUN_STATE_CANCELLED, RunState.RUN_STATE_STOPPED].includes(run.state);

/**
 * Folds that may be waiting to go on past a rung: PENDING after at least one
 * attempt (paused, released, or retrying a failed attempt). A cheap filter only:
 * `resumePaused` queues just the folds the run document records as released.
 */
export const hasWaitingFolds = (run: Run): boolean => run.folds.some((f) => f.state === FoldState.FOLD_STATE_PENDING && f.attempts > 0);

/** The sweep's numbers for its gauges (@cvc/metrics createSweepMetrics). */
export function sweepMetricsView(s: Sweep): {
  id: string;
  trialsByState: Record<string, number>;
  bestValLoss: number | undefined;
  bestRungScore: number | undefined;
  decisions: { stopped: number; continued: number };
  final: boolean;
} {
  const trialsByState: Record<string, number> = {};
  for (const t of s.trials) {
    const state = t.runId || t.state !== RunState.RUN_STATE_PENDING ? RunState[t.state].replace('RUN_STATE_', '').toLowerCase() : 'queued';
    trialsByState[state] = (trialsByState[state] ?? 0) + 1;
  }
  const best = s.trials.find((t) => t.index === s.bestTrial && s.bestTrial !== undefined)?.valLoss?.mean;
  const scores = s.decisions.map((d) => d.score).filter(Number.isFinite);
  return {
    id: s.id,
    trialsByState,
    bestValLoss: best,
    bestRungScore: scores.length > 0 ? Math.min(...scores) : undefined,
    decisions: { stopped: s.decisions.filter((d) => d.stopped).length, continued: s.decisions.filter((d) => !d.stopped).length },
    final: FINAL_SWEEP_STATES.includes(s.state),
  };
}
