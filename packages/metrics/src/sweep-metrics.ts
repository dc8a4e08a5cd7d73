import { Gauge, type Registry } from 'prom-client';
import type { SeriesRetention } from './series-retention.js';

/** What the sweep gauges show of one sweep (the coordinator derives it from the sweep document). */
export interface SweepMetricsView {
  readonly id: string;
  /** Trials by their run's state (lower case: pending, running, succeeded, stopped, ...). */
  readonly trialsByState: Readonly<Record<string, number>>;
  /** Lowest mean validation loss over folds among the finished trials; undefined while none has finished. */
  readonly bestValLoss: number | undefined;
  /** Lowest score (mean validation loss over folds) judged at any rung so far; undefined before the first judgement. */
  readonly bestRungScore: number | undefined;
  /** Rung decisions recorded: runs stopped early, and judgements that let a run go on. */
  readonly decisions: { readonly stopped: number; readonly continued: number };
  /** The sweep has ended (succeeded, failed or cancelled): its series leave /metrics after the retention. */
  readonly final?: boolean;
}

/**
 * Per-sweep gauges on `registry`: cvc_sweep_trials{sweep,state},
 * cvc_sweep_best_val_loss{sweep}, cvc_sweep_best_rung_score{sweep} and
 * cvc_sweep_decisions{sweep,outcome}. `update` replaces one sweep's series.
 * They are tracked in `retention` and leave /metrics a retention period after
 * the sweep ended; a sweep first seen ended gets none.
 */
export function createSweepMetrics(registry: Registry, retention: SeriesRetention) {
  const trials = new Gauge({ name: 'cvc_sweep_trials', help: "A sweep's trials by their run's state.", labelNames: ['sweep', 'state'], registers: [registry] });
  const bestValLoss = new Gauge({
    name: 'cvc_sweep_best_val_loss',
    help: 'Lowest mean validation loss over folds among the finished trials of a sweep.',
    labelNames: ['sweep'],
    registers: [registry],
  });
  const bestRungScore = new Gauge({
    name: 'cvc_sweep_best_rung_score',
    help: 'Lowest mean validation loss over folds judged at any rung of a sweep so far.',
    labelNames: ['sweep'],
    registers: [registry],
  });
  const decisions = new Gauge({
    name: 'cvc_sweep_decisions',
    help: 'Rung decisions recorded for a sweep, by outcome (stopped: a run stopped early; continued: it went on).',
    labelNames: ['sweep', 'outcome'],
    registers: [registry],
  });
  return {
    trials,
    bestValLoss,
    bestRungScore,
    decisions,
    /** Sets the series of `v.id` (a state no trial is in any more is removed). */
    update(v: SweepMetricsView): void {
      const key = `sweep:${v.id}`;
      // Every shown sweep has its decisions series: a sweep not tracked and ended is one this process never saw live.
      if (v.final && !retention.has(key)) return;
      const sweep = { sweep: v.id };
      for (const s of retention.series(key)) {
        if (s.metric === trials && !(String(s.labels['state']) in v.trialsByState)) retention.untrack(key, trials, s.labels);
      }
      for (const [state, n] of Object.entries(v.trialsByState)) {
        retention.track(key, trials, { sweep: v.id, state });
        trials.set({ sweep: v.id, state }, n);
      }
      for (const [g, value] of [
        [bestValLoss, v.bestValLoss],
        [bestRungScore, v.bestRungScore],
      ] as const) {
        if (value === undefined) retention.untrack(key, g, sweep);
        else {
          retention.track(key, g, sweep);
          g.set(sweep, value);
        }
      }
      for (const outcome of ['stopped', 'continued'] as const) {
        retention.track(key, decisions, { sweep: v.id, outcome });
        decisions.set({ sweep: v.id, outcome }, v.decisions[outcome]);
      }
      if (v.final) retention.finished(key);
    },
  };
}
export type SweepMetrics = ReturnType<typeof createSweepMetrics>;
