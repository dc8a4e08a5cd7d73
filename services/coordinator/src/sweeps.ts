import { randomBytes } from 'node:crypto';
import { describeError, silentLogger, type Logger } from '@cvc/core';
import { MessagingError, type DocStore } from '@cvc/messaging';
import { FoldState, RunState, Sweep, SweepState, type Run, type RunSpec, type SweepEvent, type SweepSpec, type SweepTrial } from '@cvc/proto';
import { judgeRungs, type Decision } from './asha.js';
import type { Coordinator, RunHooks } from './coordinator.js';
import { CoordinatorError } from './errors.js';
import { watchUntilFinal } from './watch-doc.js';
import { DocIndex, FULL_RECOVER_EVERY_MS } from './doc-index.js';
import type { Page, PageRequest } from './paging.js';
import { DEFAULT_MAX_DOC_BYTES } from './run-size.js';
import { planSweep, type EarlyStop } from './sweep-grid.js';
import {
  decodeSweepDoc,
  epochsReached,
  FINAL_SWEEP_STATES,
  hasWaitingFolds,
  runEnded,
  rungScores,
  sweepKey,
  sweepSettled,
  trialRunId,
  trialValLoss,
  type SweepDoc,
} from './sweep-doc.js';

export interface SweepManagerDeps {
  readonly coordinator: Coordinator;
  readonly sweeps: DocStore<SweepDoc>;
  readonly logger?: Logger;
  /** Milliseconds since the epoch (injected for tests). */
  readonly now?: () => number;
  /** Told after every recorded change of a sweep (metrics). */
  readonly onChange?: (sweep: Sweep) => void;
  /** Wait before a step that failed (NATS or storage unreachable) is tried again, in ms (default 2000). */
  readonly retryMs?: number;
  /**
   * Largest sweep document the KV takes, in bytes: the NATS server's
   * max_payload (default 1 MiB, the server's default). A sweep whose document
   * would outgrow it with room for its decisions is refused at submission.
   */
  readonly maxDocBytes?: number;
  /**
   * How often the periodic `recover()` reads every sweep document again
   * (ms; default FULL_RECOVER_EVERY_MS); in between it skips the sweeps seen
   * settled (sweepSettled), which never change again.
   */
  readonly fullRecoverEveryMs?: number;
}

/** Kept under `maxDocBytes` for the KV write's headers. */
const HEADER_ROOM = 1024;
/** Longest decision reason or trial stop reason kept in a sweep document (longer ones are cut, marked with an ellipsis). */
export const MAX_REASON_CHARS = 300;

/** `text` cut to MAX_REASON_CHARS characters. */
export const capReason = (text: string): string => (text.length <= MAX_REASON_CHARS ? text : `${text.slice(0, MAX_REASON_CHARS - 1)}…`);

/** UTF-8 bytes of `v` as JSON (what the KV stores). */
const jsonBytes = (v: unknown): number => Buffer.byteLength(JSON.stringify(v));

/**
 * Bytes a sweep's document may still grow by: per trial, its run id, stop
 * reason, losses and epochs, and two decisions (go, then stop) at each rung,
 * all at their longest.
 */
export function sweepGrowthBytes(sweep: Sweep): number {
  const worst = -1.2345678901234567e-300;
  const runId = trialRunId(sweep.id, sweep.trials.length);
  // Reasons are ASCII (asha's, "fold N failed (...)"); a rare multi-byte one that overflows fails the sweep cleanly later.
  const reason = 'x'.repeat(MAX_REASON_CHARS);
  const decision = jsonBytes({ rung: 999_999, trial: sweep.trials.length, runId, score: worst, stopped: false, reason, atMs: 9_999_999_999_999 }) + 1;
  const trial = jsonBytes({ runId, stopReason: reason, valLoss: { mean: worst, std: worst }, epochsReached: 999_999 });
  const sweepFields = jsonBytes({ error: reason, bestTrial: sweep.trials.length, bestRunId: runId });
  return sweep.trials.length * (trial + 2 * sweep.rungs.length * decision) + sweepFields;
}

/** The sweep's document does not fit in the KV any more (over the NATS max payload): it cannot be updated, so it is failed. */
class SweepTooLargeError extends CoordinatorError {
  constructor(message: string, cause: unknown) {
    super('RESOURCE_EXHAUSTED', message, { cause });
  }
}

/** Transient failures of a step: tried again later. Anything else is logged and tried again at the next change. */
const isRetryable = (err: unknown): boolean => !(err instanceof CoordinatorError) || err.outcome === 'UNAVAILABLE';

/**
 * Runs sweeps: many cross-validation runs of one base spec (a grid of
 * configurations, or a random sample of it) sharing the worker pool, at
 * most `max_parallel_runs` in flight, stopped early by fold-aware ASHA or
 * median stopping (asha.ts) on the mean validation loss over all of a
 * run's folds at each rung.
 *
 * Everything lives in the KV: the sweep document holds the trials, their
 * run ids (fixed: SWEEP-tINDEX) and every decision, recorded before it is
 * acted on. One step (`step`) reads the sweep's runs, appends the decisions
 * that follow from their epoch reports, records the trials it starts, and
 * then applies all recorded decisions (stop a run, let its paused folds go
 * on) and starts the recorded trials: each of these is idempotent, so a
 * restarted coordinator's `recover()` repeats the step and ends where the
 * first one would have. Steps of one sweep never overlap; a change of one
 * of its runs (an epoch every fold reported, a state change) schedules one.
 */
export class SweepManager {
  private readonly coordinator: Coordinator;
  private readonly sweeps: DocStore<SweepDoc>;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly onChange: (sweep: Sweep) => void;
  private readonly retryMs: number;
  private readonly maxDocBytes: number;
  /**
   * The latest recorded state of each sweep with its KV revision (for pauseAt,
   * which must answer synchronously). Only a newer revision replaces an entry,
   * so a read that an update overtook (recover's) cannot bring back a sweep
   * without its latest decisions.
   */
  private readonly cache = new Map<string, { sweep: Sweep; revision: number }>();
  /** Steps in progress by sweep id; `again` asks for one more once the current one ends. */
  private readonly steps = new Map<string, { again: boolean; done: Promise<void> }>();
  /** Per run id, what its last change looked like, so progress reports schedule no step. */
  private readonly seen = new Map<string, string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Creation times and settled sweeps seen here (see DocIndex). */
  private readonly index: DocIndex;
  private closed = false;

  constructor(deps: SweepManagerDeps) {
    this.coordinator = deps.coordinator;
    this.sweeps = deps.sweeps;
    this.logger = deps.logger ?? silentLogger;
    this.now = deps.now ?? Date.now;
    this.onChange = deps.onChange ?? (() => {});
    this.retryMs = deps.retryMs ?? 2000;
    this.maxDocBytes = deps.maxDocBytes ?? DEFAULT_MAX_DOC_BYTES;
    this.index = new DocIndex({ prefix: 'sweep.', fullReadEveryMs: deps.fullRecoverEveryMs ?? FULL_RECOVER_EVERY_MS, now: this.now });
    deps.coordinator.attachHooks(this.hooks());
  }

  /** The coordinator's hooks: a fold pauses at a rung its run has not been judged at; a run's change schedules its sweep's step. */
  private hooks(): RunHooks {
    return {
      pauseAt: (run, epoch) => {
        const s = this.cache.get(run.sweepId)?.sweep;
        if (!s || s.state !== SweepState.SWEEP_STATE_RUNNING || s.spec?.earlyStop === 'none' || !s.rungs.includes(epoch)) return false;
        if (epoch >= (run.spec?.epochs ?? 0)) return false;
        const trial = s.trials.find((t) => t.runId === run.id);
        if (!trial) return false;
        return !s.decisions.some((d) => d.trial === trial.index && d.rung === epoch);
      },
      // A sweep submitted through another coordinator is not cached here until the next recover() (a minute): read
      // it at its runs' first report instead, so their folds pause at its rungs from the start. One read per sweep.
      prepare: async (run) => {
        if (!run.sweepId || this.cache.has(run.sweepId)) return;
        try {
          const v = await this.sweeps.get(sweepKey(run.sweepId));
          if (v) this.remember(this.seenDoc(decodeSweepDoc(v.value)).sweep, v.revision);
        } catch (err) {
          this.logger.warn('reading the sweep of a reported run failed; its folds pause at rungs from the next recovery', {
            run: run.id,
            sweep: run.sweepId,
            error: describeError(err),
          });
        }
      },
      runChanged: (run) => {
        if (!run.sweepId) return;
        // A waiting fold's stored checkpoint counts too: resumePaused holds a released fold back until its rung checkpoint lands.
        const mark = `${run.state}|${run.folds
          .map((f) => `${f.state}:${f.history.length}:${f.attempts}${f.state === FoldState.FOLD_STATE_PENDING ? `:${f.lastCheckpointEpoch}` : ''}`)
          .join(',')}`;
        if (this.seen.get(run.id) === mark) return;
        this.seen.set(run.id, mark);
        this.schedule(run.sweepId);
      },
    };
  }

  private checkId(id: string): void {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$/.test(id)) throw new CoordinatorError('INVALID_ARGUMENT', `sweep id ${JSON.stringify(id)} is malformed`);
  }

  private async load(id: string): Promise<SweepDoc> {
    this.checkId(id);
    const v = await this.sweeps.get(sweepKey(id));
    if (!v) throw new CoordinatorError('NOT_FOUND', `sweep ${id} does not exist`);
    return this.seenDoc(decodeSweepDoc(v.value));
  }

  /** Feeds the index with `doc` as read or written; returns it. */
  private seenDoc(doc: SweepDoc): SweepDoc {
    this.index.saw(doc.sweep.id, doc.sweep.createdAtMs, sweepSettled(doc));
    return doc;
  }

  /** Applies `fn` with compare-and-set (it may run more than once, so it must be pure). */
  private async mutate(id: string, fn: (doc: SweepDoc) => SweepDoc): Promise<SweepDoc> {
    let value: SweepDoc;
    let revision: number;
    try {
      ({ value, revision } = await this.sweeps.update(sweepKey(id), (cur) => {
        const doc = decodeSweepDoc(cur);
        const next = fn(doc);
        return next === doc ? doc : { ...next, sweep: { ...next.sweep, updatedAtMs: this.now() } };
      }));
    } catch (err) {
      if (err instanceof MessagingError && err.code === 'TOO_LARGE')
        throw new SweepTooLargeError(`sweep ${id}: its document no longer fits in the KV (${err.message})`, err);
      throw err;
    }
    const doc = this.seenDoc(decodeSweepDoc(value));
    this.remember(doc.sweep, revision);
    return doc;
  }

  /** Caches `sweep` read or written at `revision` unless a newer revision is cached already; false when it was older. */
  private remember(sweep: Sweep, revision: number): boolean {
    const cur = this.cache.get(sweep.id);
    if (cur && cur.revision > revision) return false;
    this.cache.set(sweep.id, { sweep, revision });
    this.onChange(sweep);
    return true;
  }

  /**
   * Validates a sweep (every configuration with the run spec's schema, the
   * dataset and the network's fit to it), records it and starts its first
   * trials. Throws INVALID_ARGUMENT naming the parameter or configuration.
   */
  async submitSweep(input: SweepSpec | undefined): Promise<Sweep> {
    const plan = planSweep(input);
    const specs: RunSpec[] = [];
    for (const t of plan.trials) {
      let checked: RunSpec;
      try {
        checked = await this.coordinator.checkRunSpec(t.spec);
      } catch (err) {
        if (!(err instanceof CoordinatorError) || err.outcome === 'UNAVAILABLE') throw err;
        const label = Object.entries(t.params)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ');
        throw new CoordinatorError(err.outcome, `configuration ${t.index} (${label}): ${err.message}`, { cause: err });
      }
      // Every trial trains on the same data: the version found now.
      specs.push({ ...t.spec, datasetVersion: checked.datasetVersion });
    }
    const stamp = new Date(this.now()).toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const id = `${plan.name || 'sweep'}-${stamp}-${randomBytes(3).toString('hex')}`;
    const sweep = Sweep.fromPartial({
      id,
      spec: { ...input, earlyStop: plan.earlyStop, rungs: [...plan.rungs], reductionFactor: plan.reductionFactor, maxParallelRuns: plan.maxParallelRuns },
      state: SweepState.SWEEP_STATE_RUNNING,
      trials: plan.trials.map((t) => ({
        index: t.index,
        params: { ...t.params },
        runId: '',
        state: RunState.RUN_STATE_PENDING,
        epochsReached: 0,
        stopReason: '',
      })),
      decisions: [],
      rungs: [...plan.rungs],
      reductionFactor: plan.reductionFactor,
      createdAtMs: this.now(),
      updatedAtMs: this.now(),
    });
    const bytes = jsonBytes({ sweep, specs });
    const growth = sweepGrowthBytes(sweep);
    if (bytes + growth + HEADER_ROOM > this.maxDocBytes)
      throw new CoordinatorError(
        'INVALID_ARGUMENT',
        `sweep ${plan.name || 'sweep'}: its document would be ${bytes} bytes at submission and up to ${bytes + growth} bytes with its decisions ` +
          `(${sweep.trials.length} trials x ${sweep.rungs.length} rungs), over the limit of ${this.maxDocBytes - HEADER_ROOM} bytes ` +
          `(the NATS max_payload of ${this.maxDocBytes} bytes less ${HEADER_ROOM} for headers): use fewer configurations (random) or rungs, or split the sweep`,
      );
    let revision: number;
    try {
      revision = await this.sweeps.create(sweepKey(id), { sweep, specs });
    } catch (err) {
      if (err instanceof MessagingError && err.code === 'TOO_LARGE')
        throw new CoordinatorError('INVALID_ARGUMENT', `sweep ${plan.name || 'sweep'}: its document does not fit in the KV (${err.message})`, { cause: err });
      throw err;
    }
    this.seenDoc({ sweep, specs });
    this.remember(sweep, revision);
    this.logger.info('sweep submitted', {
      sweep: id,
      trials: plan.trials.length,
      earlyStop: plan.earlyStop,
      rungs: plan.rungs,
      maxParallelRuns: plan.maxParallelRuns,
    });
    await this.runStep(id);
    return (await this.load(id)).sweep;
  }

  async getSweep(id: string): Promise<Sweep> {
    return (await this.load(id)).sweep;
  }

  /** Every sweep, newest first (reads every sweep document). */
  async listSweeps(): Promise<Sweep[]> {
    const out: Sweep[] = [];
    for (const k of await this.sweeps.keys()) {
      const v = await this.sweeps.get(k);
      if (v) out.push(this.seenDoc(decodeSweepDoc(v.value)).sweep);
    }
    return out.sort((a, b) => b.createdAtMs - a.createdAtMs);
  }

  /**
   * One page of the sweeps, newest first (see paging.ts; INVALID_ARGUMENT for
   * a bad page_token): reads the page's documents, and once those of sweeps
   * not seen here yet, not every document each time (see DocIndex.page).
   */
  async listSweepsPage(req: PageRequest): Promise<Page<Sweep>> {
    return this.index.page(await this.sweeps.keys(), (k) => this.sweeps.get(k).then((v) => (v ? this.seenDoc(decodeSweepDoc(v.value)).sweep : undefined)), req);
  }

  /**
   * Cancels a sweep: records CANCELLED (trials not started yet will never
   * start), then cancels every run of it still going. A sweep that has ended
   * is left as it is. Repeated by `recover()` if cut short.
   */
  async cancelSweep(id: string): Promise<Sweep> {
    const doc = await this.mutate(id, (d) => {
      if (FINAL_SWEEP_STATES.includes(d.sweep.state)) return d;
      const trials = d.sweep.trials.map((t) => (t.runId ? t : { ...t, state: RunState.RUN_STATE_CANCELLED }));
      return { ...d, sweep: { ...d.sweep, state: SweepState.SWEEP_STATE_CANCELLED, trials } };
    });
    if (doc.sweep.state === SweepState.SWEEP_STATE_CANCELLED) await this.cancelRuns(doc);
    this.logger.info('sweep cancelled', { sweep: id });
    await this.runStep(id);
    return (await this.load(id)).sweep;
  }

  private async cancelRuns(doc: SweepDoc): Promise<void> {
    for (const t of doc.sweep.trials) {
      if (!t.runId) continue;
      const run = await this.tryGetRun(t.runId);
      if (run && !runEnded(run)) await this.coordinator.cancelRun(t.runId);
    }
  }

  /** Sends the sweep now and after every change until it ends or `signal` aborts. */
  async watchSweep(id: string, send: (e: SweepEvent) => void, signal: AbortSignal): Promise<void> {
    const first = await this.load(id);
    send({ sweep: first.sweep, reason: 'current' });
    if (FINAL_SWEEP_STATES.includes(first.sweep.state)) return;
    await watchUntilFinal(
      {
        store: this.sweeps,
        key: sweepKey(id),
        view: (v) => decodeSweepDoc(v).sweep,
        isFinal: (s) => FINAL_SWEEP_STATES.includes(s.state),
        what: `sweep ${id}`,
      },
      (sweep) => send({ sweep, reason: 'update' }),
      signal,
    );
  }

  /**
   * On start: loads every sweep (pauseAt needs them before the first worker
   * report) and repeats the step of each sweep still running, or cancelled
   * with runs that may still be going (not once a step saw them all ended)
   * (re-applying its recorded decisions, judging rungs reached while no
   * coordinator was there, starting queued trials). Returns the sweeps taken up.
   * Later calls (every minute) skip the sweeps seen settled, but for a full
   * read every `fullRecoverEveryMs`; the first call reads them all.
   */
  async recover(): Promise<string[]> {
    const out: string[] = [];
    for (const key of this.index.recoveryKeys(await this.sweeps.keys(), false)) {
      try {
        const v = await this.sweeps.get(key);
        if (!v) continue;
        const readDoc = this.seenDoc(decodeSweepDoc(v.value));
        const read = readDoc.sweep;
        // An update that landed while this read was on its way has cached a newer revision: that one counts.
        const sweep = this.remember(read, v.revision) ? read : (this.cache.get(read.id)?.sweep ?? read);
        if (sweep.state === SweepState.SWEEP_STATE_RUNNING || (sweep.state === SweepState.SWEEP_STATE_CANCELLED && !readDoc.cancelDone)) {
          out.push(sweep.id);
          this.schedule(sweep.id);
        }
      } catch (err) {
        this.logger.error('cannot recover sweep', { key, error: describeError(err) });
      }
    }
    if (out.length > 0) this.logger.info('recovering sweeps', { sweeps: out });
    return out;
  }

  /** Resolves once no step is in progress. */
  async idle(): Promise<void> {
    while (this.steps.size > 0) await Promise.allSettled([...this.steps.values()].map((s) => s.done));
  }

  /** Stops scheduling steps and waits for the one in progress (a restarted coordinator's recover() goes on). */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.idle();
  }

  /** Schedules a step of `id` (one at a time per sweep; a change during a step asks for another). */
  private schedule(id: string): void {
    if (this.closed) return;
    const cur = this.steps.get(id);
    if (cur) {
      cur.again = true;
      return;
    }
    const entry = { again: false, done: Promise.resolve() };
    entry.done = (async () => {
      do {
        entry.again = false;
        try {
          await this.stepOrFail(id);
        } catch (err) {
          if (!isRetryable(err)) {
            // Tried again at the next change: one that came in during this step (entry.again) is that change.
            this.logger.warn('sweep step failed; trying again at its next change', { sweep: id, error: describeError(err), again: entry.again });
            continue;
          }
          this.logger.warn('sweep step failed; trying again', { sweep: id, error: describeError(err), retryInMs: this.retryMs });
          if (!this.closed) {
            const t = setTimeout(() => {
              this.timers.delete(t);
              this.schedule(id);
            }, this.retryMs);
            t.unref();
            this.timers.add(t);
          }
          return;
        }
      } while (entry.again && !this.closed);
    })().finally(() => this.steps.delete(id));
    this.steps.set(id, entry);
  }

  /** Schedules a step and waits for it (and any it asked for) to end. */
  private async runStep(id: string): Promise<void> {
    this.schedule(id);
    await this.steps.get(id)?.done;
  }

  private async tryGetRun(runId: string): Promise<Run | undefined> {
    try {
      return await this.coordinator.getRun(runId);
    } catch (err) {
      if (err instanceof CoordinatorError && err.outcome === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  /** A step; a sweep whose document no longer fits in the KV is failed instead (no step of it can succeed). */
  private async stepOrFail(id: string): Promise<void> {
    try {
      await this.step(id);
    } catch (err) {
      if (!(err instanceof SweepTooLargeError)) throw err;
      await this.failTooLarge(id, err);
    }
  }

  /** One step of a sweep; see the class comment. */
  private async step(id: string): Promise<void> {
    const before = await this.load(id);
    const s = before.sweep;
    if (s.state !== SweepState.SWEEP_STATE_RUNNING && (s.state !== SweepState.SWEEP_STATE_CANCELLED || before.cancelDone)) return;
    if (s.state === SweepState.SWEEP_STATE_CANCELLED) await this.cancelRuns(before);
    const runs = new Map<number, Run>();
    for (const t of s.trials) {
      if (!t.runId) continue;
      const run = await this.tryGetRun(t.runId);
      if (run) runs.set(t.index, run);
    }
    if (s.state === SweepState.SWEEP_STATE_CANCELLED) {
      // Every run ended (a CANCELLING one is not yet: its clean-up's change schedules another step): the cancel is complete.
      const done = [...runs.values()].every(runEnded);
      await this.record(id, runs, [], [], done);
      return;
    }
    const mode = (s.spec?.earlyStop ?? 'asha') as EarlyStop;
    const fresh: Decision[] =
      mode === 'none'
        ? []
        : judgeRungs(
            { mode, reductionFactor: s.reductionFactor, rungs: s.rungs },
            [...runs].map(([trial, run]) => ({ trial, runId: run.id, scores: rungScores(run, s.rungs), active: !runEnded(run) })),
            s.decisions,
          );
    // Trials to start: the first queued ones, up to max_parallel_runs in flight (a run stopped just now no longer counts).
    const stopping = new Set(fresh.filter((d) => d.stopped).map((d) => d.trial));
    // A trial that could not start (FAILED, no run behind its id) holds no slot either.
    const inFlight = s.trials.filter((t) => {
      const run = runs.get(t.index);
      return t.runId && !stopping.has(t.index) && !(run && runEnded(run)) && !(!run && t.state === RunState.RUN_STATE_FAILED);
    }).length;
    const room = Math.max(0, (s.spec?.maxParallelRuns ?? s.trials.length) - inFlight);
    const starts = s.trials
      .filter((t) => !t.runId && t.state === RunState.RUN_STATE_PENDING)
      .slice(0, room)
      .map((t) => t.index);
    const doc = await this.record(id, runs, fresh, starts);
    if (doc.sweep.state !== SweepState.SWEEP_STATE_RUNNING) return;
    for (const d of fresh)
      this.logger.info(d.stopped ? 'sweep stops a run' : 'sweep lets a run go on', { sweep: id, run: d.runId, rung: d.rung, reason: d.reason });
    await this.act(doc, runs);
  }

  /**
   * Records new decisions, started trials and the trials' view of their runs; ends the sweep when every trial has ended.
   * `cancelDone`: a cancelled sweep's runs have all ended (recorded, so it is not stepped again).
   */
  private async record(
    id: string,
    runs: ReadonlyMap<number, Run>,
    fresh: readonly Decision[],
    starts: readonly number[],
    cancelDone = false,
  ): Promise<SweepDoc> {
    const at = this.now();
    return this.mutate(id, (d) => {
      const s = d.sweep;
      const known = new Set(s.decisions.map((x) => `${x.trial}/${x.rung}/${x.stopped}`));
      const decisions = [
        ...s.decisions,
        ...fresh.filter((x) => !known.has(`${x.trial}/${x.rung}/${x.stopped}`)).map((x) => ({ ...x, reason: capReason(x.reason), atMs: at })),
      ];
      const trials: SweepTrial[] = s.trials.map((t) => {
        const run = runs.get(t.index);
        if (!t.runId && starts.includes(t.index) && s.state === SweepState.SWEEP_STATE_RUNNING) return { ...t, runId: trialRunId(s.id, t.index) };
        if (!run || run.id !== t.runId) return t;
        const valLoss = trialValLoss(run, s.rungs);
        return { ...t, state: run.state, epochsReached: epochsReached(run), stopReason: capReason(run.stopReason), ...(valLoss ? { valLoss } : {}) };
      });
      const best = bestTrial(trials);
      let state = s.state;
      let error = s.error;
      const ended = (t: SweepTrial): boolean =>
        [RunState.RUN_STATE_SUCCEEDED, RunState.RUN_STATE_FAILED, RunState.RUN_STATE_CANCELLED, RunState.RUN_STATE_STOPPED].includes(t.state);
      if (state === SweepState.SWEEP_STATE_RUNNING && trials.every(ended)) {
        state = best ? SweepState.SWEEP_STATE_SUCCEEDED : SweepState.SWEEP_STATE_FAILED;
        if (!best)
          error = `no trial succeeded (${trials.filter((t) => t.state === RunState.RUN_STATE_STOPPED).length} stopped early, ${trials.filter((t) => t.state === RunState.RUN_STATE_FAILED).length} failed)`;
      }
      return {
        ...d,
        ...(cancelDone && s.state === SweepState.SWEEP_STATE_CANCELLED ? { cancelDone: true } : {}),
        sweep: {
          ...s,
          state,
          error,
          trials,
          decisions,
          ...(best ? { bestTrial: best.index, bestRunId: best.runId } : {}),
        },
      };
    });
  }

  /**
   * Ends a sweep whose document outgrew the KV: every update of it fails, so
   * no decision can be recorded and no step can succeed again. Stops its live
   * runs (their paused folds would wait for a decision for ever; checkpoints
   * are kept), then records FAILED with the reason in a document made small
   * enough to be written: without the trials' specs (no trial starts any
   * more), and, when that is still too big, without the decisions.
   * Idempotent: a transient failure is thrown and the step tried again.
   */
  private async failTooLarge(id: string, cause: SweepTooLargeError): Promise<void> {
    const doc = await this.load(id);
    if (FINAL_SWEEP_STATES.includes(doc.sweep.state)) return;
    this.logger.error('sweep document outgrew the KV; failing the sweep', { sweep: id, error: cause.message });
    const error = `${cause.message}: the sweep was failed and its runs still going were stopped`;
    const ended = new Map<number, RunState>();
    for (const t of doc.sweep.trials) {
      if (!t.runId) continue;
      let run = await this.tryGetRun(t.runId);
      if (run && !runEnded(run)) run = await this.coordinator.stopRun(run.id, capReason(`sweep ${id} failed: its document outgrew the KV`));
      if (run) ended.set(t.index, run.state);
    }
    const failed = (d: SweepDoc, dropDecisions: boolean): SweepDoc =>
      FINAL_SWEEP_STATES.includes(d.sweep.state)
        ? d
        : {
            specs: [],
            sweep: {
              ...d.sweep,
              state: SweepState.SWEEP_STATE_FAILED,
              error: dropDecisions ? `${error} (its ${d.sweep.decisions.length} decisions were dropped to record this)` : error,
              // Trials with a run show how it ended; the others never start.
              trials: d.sweep.trials.map((t) => ({ ...t, state: ended.get(t.index) ?? (t.runId ? t.state : RunState.RUN_STATE_CANCELLED) })),
              ...(dropDecisions ? { decisions: [] } : {}),
            },
          };
    try {
      await this.mutate(id, (d) => failed(d, false));
    } catch (err) {
      if (!(err instanceof SweepTooLargeError)) throw err;
      await this.mutate(id, (d) => failed(d, true));
    }
  }

  /** Applies every recorded decision and starts every recorded trial without a run (each idempotent). */
  private async act(doc: SweepDoc, runs: ReadonlyMap<number, Run>): Promise<void> {
    const s = doc.sweep;
    for (const t of s.trials) {
      if (!t.runId) continue;
      const run = runs.get(t.index);
      if (!run) {
        const spec = doc.specs[t.index];
        try {
          await this.coordinator.submitRun(spec, { id: t.runId, sweepId: s.id });
          this.logger.info('sweep started a trial', { sweep: s.id, run: t.runId, trial: t.index });
        } catch (err) {
          if (isRetryable(err)) throw err;
          // A trial that cannot start (its dataset version was deleted, say) fails alone; the sweep goes on.
          this.logger.error('sweep trial cannot start', { sweep: s.id, trial: t.index, error: describeError(err) });
          await this.mutate(s.id, (d) => ({
            ...d,
            sweep: {
              ...d.sweep,
              trials: d.sweep.trials.map((x) =>
                x.index === t.index ? { ...x, state: RunState.RUN_STATE_FAILED, stopReason: capReason(`could not start: ${describeError(err)}`) } : x,
              ),
            },
          }));
        }
        continue;
      }
      if (runEnded(run)) continue;
      // A run no fold has started yet: its submission may have been cut short after recording it (a NATS blip while
      // publishing its tasks), and the retried step finds the run, so the missing tasks are published here (deduplicated).
      if (run.state === RunState.RUN_STATE_PENDING) await this.coordinator.requeueNeverStarted(run);
      // A fold that failed before a rung never reports it, so its siblings paused there would wait for a judgement
      // that cannot come: the run is stopped (checkpoints kept), which ends the trial.
      const failed = run.folds.find((f) => f.state === FoldState.FOLD_STATE_FAILED);
      if (failed && hasWaitingFolds(run)) {
        await this.coordinator.stopRun(
          run.id,
          `fold ${failed.fold} failed (${failed.error || 'no reason given'}); the folds paused at a rung cannot be judged`,
        );
        continue;
      }
      const mine = s.decisions.filter((d) => d.trial === t.index);
      const stop = mine.find((d) => d.stopped);
      if (stop) {
        await this.coordinator.stopRun(run.id, stop.reason);
        continue;
      }
      const latest = mine.reduce<number>((r, d) => Math.max(r, d.rung), 0);
      if (latest > 0 && hasWaitingFolds(run)) await this.coordinator.resumePaused(run.id, latest);
    }
  }
}

/** The finished trial with the lowest mean validation loss (ties: the lower std, then the lower index). */
export function bestTrial(trials: readonly SweepTrial[]): SweepTrial | undefined {
  let best: SweepTrial | undefined;
  for (const t of trials) {
    if (t.state !== RunState.RUN_STATE_SUCCEEDED || !t.valLoss || !Number.isFinite(t.valLoss.mean)) continue;
    if (!best?.valLoss) {
      best = t;
      continue;
    }
    const d = t.valLoss.mean - best.valLoss.mean || t.valLoss.std - best.valLoss.std;
    if (d < 0) best = t;
  }
  return best;
}
