import { RunState, Sweep, SweepState, type SweepTrial } from '@cvc/proto';
import { listTable, num, table } from './format.js';
import { withEmptyLists } from './run-cmd.js';

/** The states a sweep ends in. */
export const FINAL_SWEEP_STATES: readonly SweepState[] = [SweepState.SWEEP_STATE_SUCCEEDED, SweepState.SWEEP_STATE_FAILED, SweepState.SWEEP_STATE_CANCELLED];

/** `running`, `succeeded`, ... */
export const sweepStateName = (s: SweepState): string => (SweepState[s] ?? 'UNRECOGNIZED').replace('SWEEP_STATE_', '').toLowerCase();
/** A trial's run state: `pending`, `running`, `stopped`, ... (`pending` before its run is started). */
export const trialStateName = (s: RunState): string =>
  s === RunState.RUN_STATE_UNSPECIFIED ? 'pending' : (RunState[s] ?? 'UNRECOGNIZED').replace('RUN_STATE_', '').toLowerCase();

/** A sweep as `--json` prints it: proto3 JSON with every field, empty lists as []. */
export function sweepJson(sweep: Sweep): unknown {
  return withEmptyLists(sweep, Sweep.toJSON(sweep));
}

/** The epochs a trial's run trains: its own swept `epochs`, else the base spec's. */
export function trialEpochs(sweep: Sweep, t: SweepTrial): number | undefined {
  const own = t.params['epochs'];
  return own !== undefined ? Number(own) : sweep.spec?.base?.epochs;
}

/** `learning-rate=1e-3 code-size=10`, in the grid's order. */
export function trialParams(sweep: Sweep, t: SweepTrial): string {
  const names = sweep.spec?.grid.map((p) => p.name) ?? Object.keys(t.params);
  return names
    .filter((n) => t.params[n] !== undefined)
    .map((n) => `${n}=${t.params[n]}`)
    .join(' ');
}

/** The decision that stopped the trial, if one did. */
export function stopDecision(sweep: Sweep, t: SweepTrial): Sweep['decisions'][number] | undefined {
  return sweep.decisions.find((d) => d.trial === t.index && d.stopped);
}

/** Why a trial was stopped, short: `rung 1: 0.05341` (from its decision), else the run's stop reason. */
export function stoppedText(sweep: Sweep, t: SweepTrial): string {
  const d = stopDecision(sweep, t);
  if (d) return `rung ${d.rung}: ${num(d.score)}`;
  return t.stopReason;
}

/** The newest score a trial has: its mean validation loss, else its latest rung score. */
export function currentScore(sweep: Sweep, t: SweepTrial): string {
  if (t.valLoss) return `${num(t.valLoss.mean)} +- ${num(t.valLoss.std)}`;
  const judged = sweep.decisions.filter((d) => d.trial === t.index);
  const last = judged[judged.length - 1];
  return last ? `rung ${last.rung}: ${num(last.score)}` : '-';
}

/** Where a trial ranks among others of its kind: finished runs, runs in flight, stopped runs, then failed or cancelled ones. */
function group(t: SweepTrial): number {
  switch (t.state) {
    case RunState.RUN_STATE_SUCCEEDED:
      return 0;
    case RunState.RUN_STATE_STOPPED:
      return 2;
    case RunState.RUN_STATE_FAILED:
    case RunState.RUN_STATE_CANCELLED:
    case RunState.RUN_STATE_CANCELLING:
      return 3;
    default:
      return 1;
  }
}

/**
 * The trials ranked best first: runs that finished, by mean validation loss
 * over their folds; then runs still in flight; then stopped runs, the later
 * their rung the better (their loss is measured at fewer epochs, so it is not
 * compared with a finished run's), then by score; failed and cancelled runs
 * last. Ties keep the configuration order.
 */
export function rankTrials(sweep: Sweep): SweepTrial[] {
  const loss = (t: SweepTrial): number => t.valLoss?.mean ?? stopDecision(sweep, t)?.score ?? Infinity;
  return [...sweep.trials].sort((a, b) => {
    const g = group(a) - group(b);
    if (g !== 0) return g;
    if (group(a) === 2 && a.epochsReached !== b.epochsReached) return b.epochsReached - a.epochsReached;
    const l = loss(a) - loss(b);
    if (l !== 0 && !Number.isNaN(l)) return l;
    return a.index - b.index;
  });
}

/** The early-stopping policy in words: `asha (rungs 1,3; eta 3)`, `median (rungs 1,2)`, `none`. */
export function policyText(sweep: Sweep): string {
  const mode = sweep.spec?.earlyStop || 'asha';
  if (mode === 'none') return 'none';
  const rungs = sweep.rungs.length ? sweep.rungs : (sweep.spec?.rungs ?? []);
  const eta = sweep.reductionFactor || sweep.spec?.reductionFactor;
  return `${mode} (rungs ${rungs.join(',') || '-'}${mode === 'asha' && eta ? `; eta ${eta}` : ''})`;
}

/**
 * `cvc sweep show`: the sweep's header, its trials ranked by mean +- std
 * validation loss over folds (the best marked `*`) with state, epochs reached
 * and why a stopped run stopped, the rung decisions, and the best run.
 */
export function renderSweep(sweep: Sweep): string {
  const base = sweep.spec?.base;
  const names = sweep.spec?.grid.map((p) => p.name) ?? [];
  const ranked = rankTrials(sweep);
  const rows = ranked.map((t, i) => [
    t.index === sweep.bestTrial ? '*' : '',
    String(i + 1),
    String(t.index),
    ...names.map((n) => t.params[n] ?? ''),
    trialStateName(t.state),
    `${t.epochsReached}/${trialEpochs(sweep, t) ?? '?'}`,
    t.valLoss ? `${num(t.valLoss.mean)} +- ${num(t.valLoss.std)}` : '-',
    t.state === RunState.RUN_STATE_STOPPED ? stoppedText(sweep, t) : '',
    t.runId || '-',
  ]);
  const lines = [
    `sweep ${sweep.id}${sweep.spec?.name ? ` (${sweep.spec.name})` : ''}: ${sweepStateName(sweep.state)}`,
    `${sweep.trials.length} configurations x ${base?.folds ?? '?'} folds of ${base?.model ?? '?'} on ${base?.dataset ?? '?'}, ${base?.epochs ?? '?'} epochs; early stopping ${policyText(sweep)}${sweep.spec?.maxParallelRuns ? `; at most ${sweep.spec.maxParallelRuns} runs at once` : ''}`,
    '',
    table(['', 'rank', 'trial', ...names, 'state', 'epochs', 'val loss (mean +- std)', 'stopped at', 'run'], rows),
  ];
  if (sweep.decisions.length > 0) {
    lines.push(
      '',
      'decisions:',
      table(
        ['rung', 'trial', 'score', 'decision', 'reason'],
        sweep.decisions.map((d) => [String(d.rung), String(d.trial), num(d.score), d.stopped ? 'stop' : 'continue', d.reason]),
      ),
    );
  }
  const best = sweep.trials.find((t) => t.index === sweep.bestTrial);
  if (best) {
    lines.push(
      '',
      `best: trial ${best.index} (${trialParams(sweep, best)}), run ${sweep.bestRunId || best.runId}${best.valLoss ? `: val loss ${num(best.valLoss.mean)} +- ${num(best.valLoss.std)}` : ''}`,
      `(cvc encoder fetch ${sweep.id} fetches its best fold's encoder)`,
    );
  }
  if (sweep.error) lines.push(`error: ${sweep.error}`);
  return lines.join('\n') + '\n';
}

/** `cvc sweep list`: one line per sweep. */
export function renderSweepList(sweeps: readonly Sweep[]): string {
  const count = (s: Sweep, st: RunState): number => s.trials.filter((t) => t.state === st).length;
  return (
    listTable(
      ['sweep', 'name', 'state', 'trials', 'succeeded', 'stopped', 'best trial', 'best val loss'],
      sweeps.map((s) => {
        const best = s.trials.find((t) => t.index === s.bestTrial);
        return [
          s.id,
          s.spec?.name ?? '',
          sweepStateName(s.state),
          String(s.trials.length),
          String(count(s, RunState.RUN_STATE_SUCCEEDED)),
          String(count(s, RunState.RUN_STATE_STOPPED)),
          best ? String(best.index) : '-',
          best?.valLoss ? `${num(best.valLoss.mean)} +- ${num(best.valLoss.std)}` : '-',
        ];
      }),
      'no sweeps yet (cvc sweep submit --dataset NAME --model M --grid NAME=V1,V2 starts one)',
    ) + '\n'
  );
}
