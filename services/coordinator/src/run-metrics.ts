import type { CoordinatorMetrics } from '@cvc/metrics';
import { FoldState, RunState, type Run } from '@cvc/proto';
import { FINAL_RUN_STATES } from './run-doc.js';

const runStateName = (s: RunState): string => (RunState[s] ?? String(s)).replace('RUN_STATE_', '').toLowerCase();
const foldStateName = (s: FoldState): string => (FoldState[s] ?? String(s)).replace('FOLD_STATE_', '').toLowerCase();

/**
 * The coordinator's run metrics, fed with every view of a run (its observer's
 * runChanged, and the runs stored when it starts): runs and folds by state,
 * recounted over every run; per fold of a run its latest losses and epochs,
 * and while it runs the time of its last progress (an attempt started, an
 * epoch reported, or images done within an epoch). The per-fold series are
 * tracked in the metrics' retention: they leave /metrics a retention period
 * after the run ended. A run first seen ended (stored before this coordinator
 * started) only counts: Prometheus has its history.
 */
export function createRunMetrics(metrics: CoordinatorMetrics, now: () => number = Date.now): { update(run: Run): void } {
  const { retention } = metrics;
  /** Each run's state and its folds' states, for the counts: every run of the bucket, a few bytes each. */
  const states = new Map<string, { run: string; folds: string[]; final: boolean }>();
  // Per running fold: (attempts, epochs, the epoch and images of its progress report) at its last progress, to stamp
  // progress only when it moves: within an epoch too, so an epoch longer than the alert's window is not taken for a stall.
  const progress = new Map<string, string>();
  const recount = (): void => {
    metrics.runs.reset();
    metrics.folds.reset();
    for (const s of states.values()) {
      metrics.runs.inc({ state: s.run });
      for (const f of s.folds) metrics.folds.inc({ state: f });
    }
  };
  return {
    update(run: Run): void {
      const before = states.get(run.id);
      const final = FINAL_RUN_STATES.includes(run.state);
      states.set(run.id, { run: runStateName(run.state), folds: run.folds.map((f) => foldStateName(f.state)), final });
      recount();
      const key = `run:${run.id}`;
      // An ended run gets its final values only if this coordinator saw it live (or still shows it).
      const show = !final || (before !== undefined && !before.final) || retention.has(key);
      for (const f of run.folds) {
        const labels = { run: run.id, fold: String(f.fold) };
        const fold = `${run.id}/${f.fold}`;
        if (f.state === FoldState.FOLD_STATE_RUNNING) {
          const mark = `${f.attempts}/${f.epochReports}/${f.progress?.epoch ?? 0}:${f.progress?.images ?? 0}`;
          if (progress.get(fold) !== mark) {
            progress.set(fold, mark);
            retention.track(key, metrics.foldLastProgress, labels);
            metrics.foldLastProgress.set(labels, now() / 1000);
          }
        } else if (progress.delete(fold)) {
          retention.untrack(key, metrics.foldLastProgress, labels);
        }
        const last = f.history[f.history.length - 1];
        if (!last || !show) continue;
        for (const g of [metrics.foldTrainLoss, metrics.foldValLoss, metrics.foldEpoch]) retention.track(key, g, labels);
        metrics.foldTrainLoss.set(labels, last.loss);
        metrics.foldValLoss.set(labels, last.valLoss);
        metrics.foldEpoch.set(labels, last.epoch);
      }
      if (final) retention.finished(key);
    },
  };
}
