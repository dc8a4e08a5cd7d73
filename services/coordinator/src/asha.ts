// Early stopping of a sweep's runs, as pure functions of the scores reported
// so far and the decisions recorded so far (so a restarted coordinator that
// replays the same reports makes the same decisions).
//
// A run's score at a rung (an epoch count) is the mean validation loss of
// all of its folds at that epoch, known once every fold has reported it
// (lower is better). The rules, with n the number of runs judged at the rung
// so far (this one included) and eta the reduction factor:
//
// - asha: while n < eta every run goes on (too few to compare). Otherwise the
//   runs judged at the rung are ranked by score (ties: the lower trial index
//   first) and the best floor(n / eta) go on; a run ranked below them is
//   stopped, i.e. it is in the worst n - floor(n / eta), about (1 - 1/eta), of
//   the runs judged at the rung.
// - median: a run is stopped when its score is worse than the median of the
//   other runs' scores at the rung, once at least 2 others have been judged.
//
// Asynchronous, with revision: a run that went on at a rung is judged again,
// against the grown pool, each time another run reaches that rung, for as long
// as it is still training and has not reached its next rung. So the order in
// which runs reach a rung does not decide who survives, as long as the run is
// still training when the others get there (the coordinator pauses a run's
// folds at each rung until the run is judged, so the queue runs every
// configuration to the first rung before going deeper).

/** A decision as recorded in the sweep document. */
export interface Decision {
  readonly rung: number;
  readonly trial: number;
  readonly runId: string;
  readonly score: number;
  readonly stopped: boolean;
  readonly reason: string;
}

/** What the rules need of one trial. */
export interface TrialScores {
  readonly trial: number;
  readonly runId: string;
  /** Mean validation loss over all folds, by rung epoch, for the rungs every fold has reported. */
  readonly scores: ReadonlyMap<number, number>;
  /** False once the run has ended (succeeded, failed, cancelled): it is ranked but not stopped. */
  readonly active: boolean;
}

export interface JudgeOptions {
  readonly mode: 'asha' | 'median';
  readonly reductionFactor: number;
  readonly rungs: readonly number[];
}

const fmt = (v: number): string => v.toPrecision(4);

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

/** One run's verdict at a rung against `pool` (every run judged at the rung, itself included). */
export function verdict(
  o: Pick<JudgeOptions, 'mode' | 'reductionFactor'>,
  rung: number,
  self: { trial: number; score: number },
  pool: readonly { trial: number; score: number }[],
): { stop: boolean; reason: string } {
  const n = pool.length;
  if (o.mode === 'median') {
    const others = pool.filter((p) => p.trial !== self.trial).map((p) => p.score);
    if (others.length < 2)
      return { stop: false, reason: `median rung ${rung}: mean val loss ${fmt(self.score)}; ${others.length} other runs judged here, 2 needed` };
    const m = median(others);
    return self.score > m
      ? {
          stop: true,
          reason: `median rung ${rung}: mean val loss ${fmt(self.score)} is worse than the median ${fmt(m)} of the ${others.length} other runs at this rung`,
        }
      : {
          stop: false,
          reason: `median rung ${rung}: mean val loss ${fmt(self.score)} is no worse than the median ${fmt(m)} of the ${others.length} other runs`,
        };
  }
  const eta = o.reductionFactor;
  if (n < eta) return { stop: false, reason: `asha rung ${rung}: mean val loss ${fmt(self.score)}; ${n} runs judged here, fewer than eta ${eta}` };
  const keep = Math.max(1, Math.floor(n / eta));
  const ranked = [...pool].sort((a, b) => a.score - b.score || a.trial - b.trial);
  const rank = ranked.findIndex((p) => p.trial === self.trial);
  return rank >= keep
    ? {
        stop: true,
        reason: `asha rung ${rung}: mean val loss ${fmt(self.score)} is in the worst ${n - keep} of ${n} runs at this rung (rank ${rank + 1}; the best ${keep} go on)`,
      }
    : { stop: false, reason: `asha rung ${rung}: mean val loss ${fmt(self.score)} ranks ${rank + 1} of ${n} (the best ${keep} go on)` };
}

/**
 * The new decisions that follow from `trials`' scores and the `recorded`
 * ones: for each rung in order, first the trials that reached it without a
 * decision (in trial order), then a revision of the trials that went on at
 * it and are still training there. A recorded decision is never changed;
 * a revision only adds a stop. The result is to be recorded (appended)
 * before it is acted on.
 */
export function judgeRungs(o: JudgeOptions, trials: readonly TrialScores[], recorded: readonly Decision[]): Decision[] {
  const all: Decision[] = [...recorded];
  const out: Decision[] = [];
  const add = (d: Decision): void => {
    all.push(d);
    out.push(d);
  };
  const stopped = (trial: number): boolean => all.some((d) => d.trial === trial && d.stopped);
  const firstAt = (trial: number, rung: number): Decision | undefined => all.find((d) => d.trial === trial && d.rung === rung);
  const latestRung = (trial: number): number => Math.max(0, ...all.filter((d) => d.trial === trial).map((d) => d.rung));
  const byIndex = [...trials].sort((a, b) => a.trial - b.trial);
  for (const rung of o.rungs) {
    const pool = (): { trial: number; score: number }[] =>
      byIndex.flatMap((t) => {
        const d = firstAt(t.trial, rung);
        return d ? [{ trial: t.trial, score: d.score }] : [];
      });
    for (const t of byIndex) {
      const score = t.scores.get(rung);
      if (score === undefined || firstAt(t.trial, rung) || stopped(t.trial)) continue;
      const v = verdict(o, rung, { trial: t.trial, score }, [...pool(), { trial: t.trial, score }]);
      const stop = v.stop && t.active;
      add({ rung, trial: t.trial, runId: t.runId, score, stopped: stop, reason: v.stop && !t.active ? `${v.reason}; the run had already ended` : v.reason });
    }
    for (const t of byIndex) {
      const first = firstAt(t.trial, rung);
      if (!first || !t.active || stopped(t.trial) || latestRung(t.trial) !== rung) continue;
      // A run that has reached a later rung is judged there, not revised here.
      if (o.rungs.some((r) => r > rung && t.scores.has(r))) continue;
      const v = verdict(o, rung, { trial: t.trial, score: first.score }, pool());
      if (v.stop) add({ rung, trial: t.trial, runId: t.runId, score: first.score, stopped: true, reason: v.reason });
    }
  }
  return out;
}
