import { Gauge, type Registry } from 'prom-client';

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
}

/**
 * Per-sweep gauges on `registry`: cvc_sweep_trials{sweep,state},
 * cvc_sweep_best_val_loss{sweep}, cvc_sweep_best_rung_score{sweep} and
 * cvc_sweep_decisions{sweep,outcome}. `update` replaces one sweep's series.
 */
export function createSweepMetrics(registry: Registry) {
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
  const states = new Map<string, Set<string>>();
  return {
    trials,
    bestValLoss,
    bestRungScore,
    decisions,
    /** Sets the series of `v.id` (a state no trial is in any more is removed). */
    update(v: SweepMetricsView): void {
      const before = states.get(v.id) ?? new Set<string>();
      for (const s of before) if (!(s in v.trialsByState)) trials.remove({ sweep: v.id, state: s });
      for (const [state, n] of Object.entries(v.trialsByState)) trials.set({ sweep: v.id, state }, n);
      states.set(v.id, new Set(Object.keys(v.trialsByState)));
      if (v.bestValLoss === undefined) bestValLoss.remove({ sweep: v.id });
      else bestValLoss.set({ sweep: v.id }, v.bestValLoss);
      if (v.bestRungScore === undefined) bestRungScore.remove({ sweep: v.id });
      else bestRungScore.set({ sweep: v.id }, v.bestRungScore);
      decisions.set({ sweep: v.id, outcome: 'stopped' }, v.decisions.stopped);
      decisions.set({ sweep: v.id, outcome: 'continued' }, v.decisions.continued);
    },
  };
}
export type SweepMetrics = ReturnType<typeof createSweepMetrics>;
