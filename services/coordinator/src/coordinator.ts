import { randomBytes, randomUUID } from 'node:crypto';
import { createBackoff, CvcError, describeError, silentLogger, throwIfAborted, type Logger } from '@cvc/core';
import {
  FoldState,
  Run,
  type Ack,
  RunState,
  CheckpointKind,
  type FoldStatus,
  type AttemptRef,
  type CheckpointChunk_Header,
  type EpochMetrics,
  type FailFoldRequest,
  type FinishFoldRequest,
  type FoldProgress,
  type ReportBadCheckpointRequest,
  type ReportBadCheckpointResponse,
  type RunEvent,
  type RunSpec,
  type StartAttemptRequest,
  type StartAttemptResponse,
} from '@cvc/proto';
import { createDatasetCatalog, layout, StorageError, type DatasetCatalog, type ObjectStore } from '@cvc/storage';
import { isNatsUnavailable, MessagingError, type DocStore, type FoldTask, type TaskQueue } from '@cvc/messaging';
import { capError, CoordinatorError } from './errors.js';
import { confirmBadCheckpoint } from './bad-checkpoint.js';
import { checkRunFits, DEFAULT_MAX_DOC_BYTES, MAX_WORKER_BYTES } from './run-size.js';
import { duplicateOfLiveAttempt, REQUEUE_WINDOW_MS } from './live-attempt.js';
import { watchUntilFinal } from './watch-doc.js';
import { DocIndex, FULL_RECOVER_EVERY_MS } from './doc-index.js';
import type { Page, PageRequest } from './paging.js';
import type { ArtifactExporter } from './export-artifacts.js';
import { endAttempt, finalizingIfDone, succeededFolds, summarize } from './run-ending.js';
import { decodeDoc, ENDING_RUN_STATES, FINAL_FOLD_STATES, FINAL_RUN_STATES, fitSpecToDataset, resolveSpec, runKey, wireSpec, type RunDoc } from './run-doc.js';

export interface CoordinatorDeps {
  readonly store: ObjectStore;
  readonly queue: TaskQueue;
  readonly runs: DocStore<RunDoc>;
  readonly logger?: Logger;
  /** Milliseconds since the epoch (injected for tests). */
  readonly now?: () => number;
  /** Largest checkpoint accepted, in bytes (default 512 MiB). */
  readonly maxCheckpointBytes?: number;
  /** The NATS server's max_payload, which a run document must fit in (default 1 MiB): a run that could outgrow it is refused at submit. */
  readonly maxDocBytes?: number;
  /** Told about every state change and event (metrics). */
  readonly observer?: CoordinatorObserver;
  /**
   * Writes a finished run's encoder and report (default: the real export,
   * which builds the model with TensorFlow.js; loaded only when first used).
   */
  readonly exportArtifacts?: ArtifactExporter;
  /** Backoff between tries of a finalisation or cancel clean-up that failed transiently (ms; default 1000 doubling to 30 000, with jitter). */
  readonly finalizeRetry?: { readonly initialMs: number; readonly maxMs: number };
  /**
   * How long a fold let go on past a rung waits for the checkpoint of that
   * rung from the attempt it paused (still uploading it) before it is queued
   * anyway, from an older checkpoint (ms; default twice the queue's ack_wait).
   * See `resumePaused`.
   */
  readonly checkpointGraceMs?: number;
  /**
   * How often the periodic `recover()` reads every run document again, ended
   * runs included (ms; default FULL_RECOVER_EVERY_MS). In between it skips the
   * runs this coordinator has seen end, which never change again.
   */
  readonly fullRecoverEveryMs?: number;
}

export { FULL_RECOVER_EVERY_MS } from './doc-index.js';

/** The real export, imported on first use (tests hand in their own and never load it). */
const realExport: ArtifactExporter = async (input) => (await import('./export-artifacts.js')).exportRunArtifacts(input);

/** Failures worth another try: object storage or NATS unreachable. Anything else will fail the same way again. */
export function isTransient(err: unknown): boolean {
  // UNAVAILABLE: S3 stayed unreachable past the store's own retries; S3_ERROR: a refusal (credentials, policy) an operator can fix.
  return (err instanceof StorageError && (err.code === 'UNAVAILABLE' || err.code === 'S3_ERROR')) || isNatsUnavailable(err);
}

/** Waits `ms`, or less when `signal` aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * What a sweep scheduler hooks into the coordinator (see sweeps.ts): whether a
 * fold pauses at a rung, and every change of a run.
 */
export interface RunHooks {
  /** True when a fold of `run` (its history already holding `epoch`) is to pause at `epoch` until its sweep judges the run. Must be pure. */
  pauseAt(run: Run, epoch: number): boolean;
  /**
   * Awaited before a report of `run` is recorded, so that `pauseAt` knows the
   * run's sweep: one submitted through another coordinator since this one
   * last read the sweeps (optional).
   */
  prepare?(run: Run): Promise<void>;
  /** Told after every recorded change of a run. */
  runChanged(run: Run, reason: string): void;
}

const GO_ON: Ack = { stop: false, reason: '' };

/** Hooks for metrics; every method is optional. */
export interface CoordinatorObserver {
  runChanged?(run: Run, reason: string): void;
  redelivery?(): void;
  checkpointStored?(bytes: number): void;
  foldFailed?(): void;
}

/**
 * The coordinator's logic: validates and records runs, enqueues one task per
 * fold, takes workers' attempts, reports and checkpoints, and finalises a
 * run (summary and the best fold's encoder) once every fold has ended. All
 * state lives in the KV bucket and object storage, so a restart loses nothing.
 *
 * A run ends in two steps: the update that ends its last fold (or a cancel)
 * records FINALIZING (or CANCELLING); then an idempotent step in the
 * background writes the artifacts and records the final state. `recover()`
 * repeats that step, on start, for every run a previous coordinator left
 * half-ended.
 */
export class Coordinator {
  private readonly store: ObjectStore;
  private readonly queue: TaskQueue;
  private readonly runs: DocStore<RunDoc>;
  private readonly catalog: DatasetCatalog;
  private readonly logger: Logger;
  private readonly now: () => number;
  readonly maxCheckpointBytes: number;
  private readonly maxDocBytes: number;
  private readonly observer: CoordinatorObserver;
  private readonly exportArtifacts: ArtifactExporter;
  private readonly retry: { readonly initialMs: number; readonly maxMs: number };
  private readonly checkpointGraceMs: number;
  /** Finalisations and cancel clean-ups in progress, by run id. */
  private readonly background = new Map<string, Promise<void>>();
  /** Aborted by close(): background work stops (a restarted coordinator resumes it). */
  private readonly shutdown = new AbortController();
  private hooks: RunHooks | undefined;
  /** Creation times and ended runs seen by this coordinator (see DocIndex). */
  private readonly index: DocIndex;

  constructor(deps: CoordinatorDeps) {
    this.store = deps.store;
    this.queue = deps.queue;
    this.runs = deps.runs;
    this.catalog = createDatasetCatalog(deps.store);
    this.logger = deps.logger ?? silentLogger;
    this.now = deps.now ?? Date.now;
    this.maxCheckpointBytes = deps.maxCheckpointBytes ?? 512 * 1024 * 1024;
    this.maxDocBytes = deps.maxDocBytes ?? DEFAULT_MAX_DOC_BYTES;
    this.observer = deps.observer ?? {};
    this.exportArtifacts = deps.exportArtifacts ?? realExport;
    this.retry = deps.finalizeRetry ?? { initialMs: 1000, maxMs: 30_000 };
    this.checkpointGraceMs = deps.checkpointGraceMs ?? 2 * deps.queue.ackWaitMs;
    this.index = new DocIndex({ prefix: 'run.', fullReadEveryMs: deps.fullRecoverEveryMs ?? FULL_RECOVER_EVERY_MS, now: this.now });
  }

  /** Installs the sweep scheduler's hooks (one set; a second call replaces the first). */
  attachHooks(hooks: RunHooks): void {
    this.hooks = hooks;
  }

  private checkRunId(runId: string): void {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(runId)) throw new CoordinatorError('INVALID_ARGUMENT', `run id ${JSON.stringify(runId)} is malformed`);
  }

  private async load(runId: string): Promise<RunDoc> {
    this.checkRunId(runId);
    const v = await this.runs.get(runKey(runId));
    if (!v) throw new CoordinatorError('NOT_FOUND', `run ${runId} does not exist`);
    const doc = decodeDoc(v.value);
    this.seen(doc.run);
    return doc;
  }

  /** Applies `fn` with compare-and-set (it may run more than once, so it must be pure). */
  private async mutate(runId: string, reason: string, fn: (doc: RunDoc) => RunDoc): Promise<RunDoc> {
    this.checkRunId(runId);
    let value: RunDoc;
    try {
      ({ value } = await this.runs.update(runKey(runId), (cur) => {
        const doc = decodeDoc(cur);
        const next = fn(doc);
        const reported = next.reported ?? doc.reported;
        const manifest = next.manifest ?? doc.manifest;
        const paused = next.paused ?? doc.paused;
        const released = next.released ?? doc.released;
        const pausedAtMs = next.pausedAtMs ?? doc.pausedAtMs;
        const finishedBy = next.finishedBy ?? doc.finishedBy;
        return {
          run: { ...next.run, updatedAtMs: this.now() },
          tokens: next.tokens,
          ...(reported ? { reported } : {}),
          ...(manifest ? { manifest } : {}),
          ...(paused ? { paused } : {}),
          ...(released ? { released } : {}),
          ...(pausedAtMs ? { pausedAtMs } : {}),
          ...(finishedBy ? { finishedBy } : {}),
        };
      }));
    } catch (err) {
      if (err instanceof CvcError && err.code === 'NOT_FOUND') throw new CoordinatorError('NOT_FOUND', `run ${runId} does not exist`);
      throw err;
    }
    const doc = decodeDoc(value);
    this.seen(doc.run);
    this.observer.runChanged?.(doc.run, reason);
    this.hooks?.runChanged(doc.run, reason);
    return doc;
  }

  /**
   * The spec resolved and fitted to its dataset (the newest import with its fold count, or the version it names).
   * A spec without folds (unset) takes the fold count of the import it would train on (the version it names,
   * else the newest), so `run submit` without `--folds` fits any import, also from a client that predates this.
   */
  private async prepareRun(input: RunSpec | undefined) {
    let spec = resolveSpec(input);
    if (input && input.folds === undefined) {
      const imports = await this.catalog.list(spec.dataset);
      const chosen = spec.datasetVersion ? imports.find((i) => i.version === spec.datasetVersion) : imports[imports.length - 1];
      if (chosen) spec = { ...spec, folds: chosen.folds };
    }
    let imp;
    try {
      imp = await this.catalog.find(spec.dataset, { folds: spec.folds, ...(spec.datasetVersion ? { version: spec.datasetVersion } : {}) });
    } catch (err) {
      if (err instanceof StorageError && (err.code === 'DATASET_NOT_IMPORTED' || err.code === 'FOLDS_MISMATCH')) {
        throw new CoordinatorError(err.code === 'DATASET_NOT_IMPORTED' ? 'NOT_FOUND' : 'FAILED_PRECONDITION', err.message);
      }
      throw err;
    }
    // The network must fit the dataset's images (a preset's fixed shape, a config's geometry); the stored spec carries the resolved config.
    spec = fitSpecToDataset(spec, spec.dataset, { height: imp.height, width: imp.width, channels: imp.channels });
    // Every epoch of every fold is kept in the run document: refused now rather than when the history no longer fits.
    checkRunFits({ ...wireSpec(spec), datasetVersion: imp.version }, spec.folds, spec.epochs, this.maxDocBytes);
    return { spec, imp };
  }

  /** Checks a spec as submitRun does (the schema, the dataset and the network's fit to it) without recording anything; returns the resolved spec. */
  async checkRunSpec(input: RunSpec | undefined): Promise<RunSpec> {
    const { spec, imp } = await this.prepareRun(input);
    return { ...wireSpec(spec), datasetVersion: imp.version };
  }

  /**
   * Validates a spec against the models and the dataset catalog, records the run and enqueues its folds.
   * With `id` (a sweep's trial), the run gets that id, and a second submission of it returns the recorded run
   * (its never-started folds queued again, deduplicated), so a restarted sweep scheduler cannot start a trial twice.
   */
  async submitRun(input: RunSpec | undefined, opts: { id?: string; sweepId?: string } = {}): Promise<Run> {
    const { spec, imp } = await this.prepareRun(input);
    const t = new Date(this.now());
    const stamp = t.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const id = opts.id ?? `${spec.name || spec.model}-${stamp}-${randomBytes(3).toString('hex')}`;
    this.checkRunId(id);
    const run = Run.fromPartial({
      id,
      sweepId: opts.sweepId ?? '',
      spec: { ...wireSpec(spec), datasetVersion: imp.version },
      state: RunState.RUN_STATE_PENDING,
      datasetVersion: imp.version,
      createdAtMs: this.now(),
      updatedAtMs: this.now(),
      folds: Array.from({ length: spec.folds }, (_, fold) => ({ fold, state: FoldState.FOLD_STATE_PENDING })),
    });
    try {
      await this.runs.create(runKey(id), { run, tokens: new Array<string>(spec.folds).fill(''), manifest: imp.manifest });
    } catch (err) {
      if (!(opts.id && err instanceof MessagingError && err.code === 'ALREADY_EXISTS')) throw err;
      const existing = (await this.load(id)).run;
      await this.requeueNeverStarted(existing);
      return existing;
    }
    this.seen(run);
    for (let fold = 0; fold < spec.folds; fold++) await this.queue.enqueue({ runId: id, fold });
    this.logger.info('run submitted', { run: id, dataset: spec.dataset, version: imp.version, folds: spec.folds });
    this.observer.runChanged?.(run, 'submitted');
    this.hooks?.runChanged(run, 'submitted');
    return run;
  }

  /**
   * Publishes again the task of every fold of `run` that no attempt has taken
   * yet (deduplicated by message id, so a task still queued is not doubled):
   * a submission cut short between recording the run and publishing all its
   * tasks gets them. Returns the folds whose task was missing.
   */
  async requeueNeverStarted(run: Run): Promise<number[]> {
    if (ENDING_RUN_STATES.includes(run.state)) return [];
    const out: number[] = [];
    for (const f of run.folds) {
      if (f.state !== FoldState.FOLD_STATE_PENDING || f.attempts > 0) continue;
      if (!(await this.queue.enqueue({ runId: run.id, fold: f.fold })).duplicate) out.push(f.fold);
    }
    if (out.length > 0) this.logger.info('never-started folds queued again', { run: run.id, folds: out });
    return out;
  }

  async getRun(runId: string): Promise<Run> {
    return (await this.load(runId)).run;
  }

  /** Every run, newest first (reads every run document). */
  async listRuns(): Promise<Run[]> {
    const out: Run[] = [];
    for (const k of await this.runs.keys()) {
      const v = await this.runs.get(k);
      if (v) out.push(this.seen(decodeDoc(v.value).run));
    }
    return out.sort((a, b) => b.createdAtMs - a.createdAtMs);
  }

  /** Feeds the index with `run` as read or written; returns it. */
  private seen(run: Run): Run {
    this.index.saw(run.id, run.createdAtMs, FINAL_RUN_STATES.includes(run.state));
    return run;
  }

  /**
   * One page of the runs, newest first (see paging.ts; INVALID_ARGUMENT for a
   * bad page_token). Reads the documents of the page's runs, and of runs this
   * coordinator has not seen yet (to learn their creation time, once), not
   * every document each time.
   */
  async listRunsPage(req: PageRequest): Promise<Page<Run>> {
    return this.index.page(await this.runs.keys(), (k) => this.runs.get(k).then((v) => (v ? this.seen(decodeDoc(v.value).run) : undefined)), req);
  }

  /**
   * Cancels a run: unfinished folds become CANCELLED and their tokens are
   * cleared (their workers stop at their next call) in one update to
   * CANCELLING; then the clean-up records the cancelled run. Returns the run
   * CANCELLED, or CANCELLING when the clean-up must be retried (it goes on in
   * the background). A run that has ended, or is finalising, is left as it is.
   */
  async cancelRun(runId: string): Promise<Run> {
    const doc = await this.mutate(runId, 'cancelling', (d) => {
      if (ENDING_RUN_STATES.includes(d.run.state)) return d;
      return {
        ...d,
        tokens: d.tokens.map(() => ''),
        run: {
          ...d.run,
          state: RunState.RUN_STATE_CANCELLING,
          folds: d.run.folds.map((f) => (FINAL_FOLD_STATES.includes(f.state) ? f : endAttempt(f, FoldState.FOLD_STATE_CANCELLED))),
        },
      };
    });
    if (doc.run.state !== RunState.RUN_STATE_CANCELLING) return doc.run;
    try {
      return await this.completeCancel(runId);
    } catch (err) {
      this.logger.warn('cancel clean-up failed; retrying in the background', { run: runId, error: describeError(err) });
      this.schedule(runId, 'cancel');
      return doc.run;
    }
  }

  /**
   * The clean-up of a cancel, idempotent: does nothing unless the run is
   * CANCELLING; writes runs/RUN/summary.json (the cancelled run, its finished
   * folds and, when some succeeded, their mean losses), then records
   * CANCELLED. Nothing is deleted: the finished folds' checkpoints stay
   * downloadable.
   */
  async completeCancel(runId: string): Promise<Run> {
    const run = (await this.load(runId)).run;
    if (run.state !== RunState.RUN_STATE_CANCELLING) return run;
    const { ok, best } = succeededFolds(run);
    const summary = best ? summarize(ok, best, '') : undefined;
    const final: Run = { ...run, state: RunState.RUN_STATE_CANCELLED, ...(summary ? { summary } : {}) };
    await this.writeSummary(final);
    const done = await this.mutate(runId, 'cancelled', (d) =>
      d.run.state !== RunState.RUN_STATE_CANCELLING ? d : { ...d, run: { ...d.run, state: RunState.RUN_STATE_CANCELLED, ...(summary ? { summary } : {}) } },
    );
    this.logger.info('run cancelled', { run: runId, finishedFolds: run.folds.filter((f) => f.state !== FoldState.FOLD_STATE_CANCELLED).map((f) => f.fold) });
    return done.run;
  }

  /** Sends the run now and after every change until it ends or `signal` aborts. */
  async watchRun(runId: string, send: (e: RunEvent) => void, signal: AbortSignal): Promise<void> {
    const first = await this.load(runId);
    send({ run: first.run, reason: 'current' });
    if (FINAL_RUN_STATES.includes(first.run.state)) return;
    await watchUntilFinal(
      { store: this.runs, key: runKey(runId), view: (v) => decodeDoc(v).run, isFinal: (r) => FINAL_RUN_STATES.includes(r.state), what: `run ${runId}` },
      (run) => send({ run, reason: 'update' }),
      signal,
    );
  }

  /**
   * Begins an attempt at a fold and hands out its token. Refused (proceed
   * false: the worker acknowledges and drops the task) when the run is ending,
   * the fold has ended or is paused at a rung, or this is the first delivery
   * of a task for a fold whose attempt reported progress less than half an
   * ack_wait ago (a duplicate task; see live-attempt.ts).
   */
  async startAttempt(req: StartAttemptRequest): Promise<StartAttemptResponse> {
    // The name is kept in the fold's status: the run document's size bound (run-size.ts) allows MAX_WORKER_BYTES.
    if (Buffer.byteLength(req.worker) > MAX_WORKER_BYTES)
      throw new CoordinatorError('INVALID_ARGUMENT', `worker name must be at most ${MAX_WORKER_BYTES} bytes, got ${Buffer.byteLength(req.worker)}`);
    const cur = await this.load(req.runId);
    const f = cur.run.folds[req.fold];
    if (!f) throw new CoordinatorError('INVALID_ARGUMENT', `run ${req.runId} has no fold ${req.fold}`);
    const skip = (reason: string): StartAttemptResponse => ({ proceed: false, token: '', datasetVersion: '', manifest: '', resumeCheckpoint: '', reason });
    const refusal = (d: RunDoc, fold: FoldStatus): string | undefined => {
      if (ENDING_RUN_STATES.includes(d.run.state)) return `run is ${RunState[d.run.state]}`;
      if (FINAL_FOLD_STATES.includes(fold.state)) return `fold ${req.fold} is ${FoldState[fold.state]}`;
      const rung = d.paused?.[req.fold] ?? 0;
      if (rung > 0) return `fold ${req.fold} is paused at epoch ${rung} until its sweep judges the run`;
      // A second task for a fold whose attempt is alive (see live-attempt.ts) is a duplicate: taking the token from that
      // attempt would make the two steal it from each other until one task runs out of deliveries and fails the fold.
      const last = fold.progress?.updatedAtMs ?? 0;
      const now = this.now();
      if (fold.state === FoldState.FOLD_STATE_RUNNING && d.tokens[req.fold] && duplicateOfLiveAttempt(req.delivery, last, now, this.queue.ackWaitMs))
        return `fold ${req.fold} is being trained by a live attempt (worker ${fold.worker || '?'}, progress ${Math.round((now - last) / 1000)} s ago); this task is a duplicate`;
      return undefined;
    };
    const early = refusal(cur, f);
    if (early) return skip(early);
    const token = randomUUID();
    if (req.delivery > 1) this.observer.redelivery?.();
    const doc = await this.mutate(req.runId, `fold ${req.fold} started`, (d) => {
      // The run may have ended (a cancel, say) since it was read: then this attempt is not started.
      const now = d.run.folds[req.fold];
      if (!now || refusal(d, now)) return d;
      const tokens = [...d.tokens];
      tokens[req.fold] = token;
      // The resume task (if any) has been taken: nothing is owed for this fold any more.
      const released = d.released?.map((r, i) => (i === req.fold ? 0 : r));
      return {
        ...d,
        tokens,
        ...(released ? { released } : {}),
        run: {
          ...d.run,
          state: RunState.RUN_STATE_RUNNING,
          folds: d.run.folds.map((x) =>
            x.fold === req.fold
              ? {
                  ...x,
                  state: FoldState.FOLD_STATE_RUNNING,
                  attempts: x.attempts + 1,
                  worker: req.worker,
                  error: '',
                  resumedFromEpoch: x.lastCheckpoint ? x.lastCheckpointEpoch : 0,
                }
              : x,
          ),
        },
      };
    });
    const fold = doc.run.folds[req.fold];
    if (doc.tokens[req.fold] !== token)
      return skip(fold ? (refusal(doc, fold) ?? 'another attempt owns this fold') : `run ${req.runId} has no fold ${req.fold}`);
    // Runs submitted before the manifest was kept in the run document look it up in the catalog.
    const manifest =
      doc.manifest ?? (await this.catalog.find(doc.run.spec?.dataset ?? '', { folds: doc.run.folds.length, version: doc.run.datasetVersion })).manifest;
    this.logger.info('attempt started', { run: req.runId, fold: req.fold, worker: req.worker, delivery: req.delivery, resume: fold?.lastCheckpointEpoch ?? 0 });
    return {
      proceed: true,
      token,
      ...(doc.run.spec ? { spec: doc.run.spec } : {}),
      datasetVersion: doc.run.datasetVersion,
      manifest,
      resumeCheckpoint: fold?.lastCheckpoint ?? '',
      reason: '',
    };
  }

  /** Throws unless `a` is the fold's current attempt (and the run still wants it). */
  private checkToken(doc: RunDoc, a: AttemptRef | undefined): number {
    if (!a) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt is required');
    const f = doc.run.folds[a.fold];
    if (!f) throw new CoordinatorError('INVALID_ARGUMENT', `run ${a.runId} has no fold ${a.fold}`);
    if (doc.run.state === RunState.RUN_STATE_CANCELLED || doc.run.state === RunState.RUN_STATE_CANCELLING)
      throw new CoordinatorError('CANCELLED', `run ${a.runId} was cancelled`);
    if (!a.token || doc.tokens[a.fold] !== a.token) {
      throw new CoordinatorError('FAILED_PRECONDITION', `stale attempt token for run ${a.runId} fold ${a.fold}: another attempt owns this fold`);
    }
    return a.fold;
  }

  /** The answer to a report of fold `fold`: stop when the run was stopped early or the fold is paused at a rung. */
  private ackFor(d: RunDoc, fold: number): Ack {
    if (d.run.state === RunState.RUN_STATE_STOPPED) return { stop: true, reason: `run stopped early: ${d.run.stopReason}` };
    const rung = d.paused?.[fold] ?? 0;
    if (rung > 0) return { stop: true, reason: `paused at epoch ${rung}: the sweep judges the run once every fold has reported it` };
    return GO_ON;
  }

  /**
   * Records a finished epoch. Answers `stop` when the run was stopped early
   * (nothing is recorded), or when its sweep pauses the fold at this epoch (a
   * rung): the fold then waits, PENDING, until the sweep judges the run and
   * queues it again (`resumePaused`), or stops the run. The attempt keeps its
   * token so that it can still upload this epoch's checkpoint (and the time of
   * the pause is recorded: resumePaused waits for that upload for a while).
   */
  async reportEpoch(a: AttemptRef | undefined, m: EpochMetrics | undefined): Promise<Ack> {
    if (!a || !m) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt and metrics are required');
    if (!Number.isFinite(m.loss) || !Number.isFinite(m.valLoss) || m.epoch < 1) {
      throw new CoordinatorError(
        'INVALID_ARGUMENT',
        `epoch report must have a positive epoch and finite losses (epoch ${m.epoch}, loss ${m.loss}, val_loss ${m.valLoss})`,
      );
    }
    for (const [field, v] of [
      ['val_mse', m.valMse],
      ['val_cosine', m.valCosine ?? 0],
      ['seconds', m.seconds],
      ['images_per_sec', m.imagesPerSec],
    ] as const) {
      if (!Number.isFinite(v) || (field !== 'val_cosine' && v < 0))
        throw new CoordinatorError('INVALID_ARGUMENT', `epoch report: ${field} must be a finite number${field === 'val_cosine' ? '' : ' >= 0'}, got ${v}`);
    }
    const before = await this.load(a.runId);
    // The run document keeps one history record per epoch up to the spec's count (checkRunFits sized it so): a later
    // epoch would grow it past one NATS message, after which no update of the run could be stored.
    const epochs = before.run.spec?.epochs ?? 0;
    if (epochs > 0 && m.epoch > epochs)
      throw new CoordinatorError('INVALID_ARGUMENT', `epoch report: epoch ${m.epoch} is past the ${epochs} epochs of run ${a.runId}`);
    if (before.run.state === RunState.RUN_STATE_STOPPED) return this.ackFor(before, a.fold);
    await this.hooks?.prepare?.(before.run);
    const doc = await this.mutate(a.runId, `fold ${a.fold} epoch ${m.epoch}`, (d) => {
      if (d.run.state === RunState.RUN_STATE_STOPPED) return d;
      const fold = this.checkToken(d, a);
      // A retry of a report this attempt already made (its answer was lost in a coordinator restart): nothing to count again.
      const key = `${a.token}:${m.epoch}`;
      if (d.reported?.[fold] === key) return d;
      const reported = [...(d.reported ?? [])];
      reported[fold] = key;
      const run = {
        ...d.run,
        folds: d.run.folds.map((x) =>
          x.fold === fold
            ? { ...x, epochReports: x.epochReports + 1, history: [...x.history.filter((h) => h.epoch !== m.epoch), m].sort((p, q) => p.epoch - q.epoch) }
            : x,
        ),
      };
      if (!this.hooks?.pauseAt(run, m.epoch)) return { reported, tokens: d.tokens, run };
      const paused = run.folds.map((x) => d.paused?.[x.fold] ?? 0);
      paused[fold] = m.epoch;
      const pausedAtMs = run.folds.map((x) => d.pausedAtMs?.[x.fold] ?? 0);
      pausedAtMs[fold] = this.now();
      return {
        reported,
        tokens: d.tokens,
        paused,
        pausedAtMs,
        run: { ...run, folds: run.folds.map((x) => (x.fold === fold ? endAttempt(x, FoldState.FOLD_STATE_PENDING) : x)) },
      };
    });
    return this.ackFor(doc, a.fold);
  }

  /**
   * Stops a run early (a sweep's decision): its unfinished folds become
   * STOPPED in one update, so queued tasks are skipped at StartAttempt and
   * running attempts are told to stop at their next report (their tokens stay
   * valid, so they can still store checkpoints, which are all kept). Writes
   * runs/RUN/summary.json with the stopped run. A run that has ended is left
   * as it is. Idempotent.
   */
  async stopRun(runId: string, reason: string): Promise<Run> {
    const doc = await this.mutate(runId, 'stopped', (d) => {
      if (ENDING_RUN_STATES.includes(d.run.state)) return d;
      return {
        ...d,
        paused: d.run.folds.map(() => 0),
        run: {
          ...d.run,
          state: RunState.RUN_STATE_STOPPED,
          stopReason: reason,
          folds: d.run.folds.map((f) => (FINAL_FOLD_STATES.includes(f.state) ? f : endAttempt(f, FoldState.FOLD_STATE_STOPPED))),
        },
      };
    });
    if (doc.run.state === RunState.RUN_STATE_STOPPED) {
      this.logger.info('run stopped early', { run: runId, reason });
      await this.writeSummary(doc.run).catch((err: unknown) =>
        this.logger.warn('writing the summary of a stopped run failed', { run: runId, error: describeError(err) }),
      );
    }
    return doc.run;
  }

  /**
   * Lets a run's folds paused at `rung` go on: clears their pause and records
   * them as released (one update), then queues each released fold again
   * (message id RUN.FOLD.rRUNG.aATTEMPTS: a repeated call, after a coordinator
   * restart say, queues nothing twice, and a second pause of the fold at the
   * same rung, after another attempt, gets a task of its own). Only released
   * folds are queued: a fold that is PENDING because its attempt failed waits
   * for its own task's redelivery and gets no second task. Does nothing for a
   * run that has ended.
   *
   * A released fold whose pausing attempt still holds its token and has not
   * stored the rung's checkpoint yet (the attempt reports the epoch, then
   * uploads its checkpoint, and the report may have been the last one the run
   * was waiting for) is not queued yet: a new attempt would take the token,
   * the upload would be refused, and the fold would redo the epochs since its
   * older checkpoint. The stored checkpoint is a change of the run, so the
   * sweep's step calls this again and the fold is queued then. An attempt that
   * died before its upload is not waited for past `checkpointGraceMs` after
   * the pause: the next call after that (the sweep's recovery every minute)
   * queues the fold from its older checkpoint. Returns the folds queued.
   */
  async resumePaused(runId: string, rung: number): Promise<number[]> {
    let doc = await this.load(runId);
    if (ENDING_RUN_STATES.includes(doc.run.state)) return [];
    if ((doc.paused ?? []).some((p) => p === rung)) {
      doc = await this.mutate(runId, `resumed after epoch ${rung}`, (d) => {
        if (ENDING_RUN_STATES.includes(d.run.state)) return d;
        const paused = d.run.folds.map((f) => d.paused?.[f.fold] ?? 0);
        const released = d.run.folds.map((f) => (paused[f.fold] === rung ? rung : (d.released?.[f.fold] ?? 0)));
        return { ...d, paused: paused.map((p) => (p === rung ? 0 : p)), released };
      });
      if (ENDING_RUN_STATES.includes(doc.run.state)) return [];
    }
    // Every fold released and not yet taken (this call's, or one cut short before it queued them): queued, deduplicated.
    const folds = doc.run.folds.filter((f) => f.state === FoldState.FOLD_STATE_PENDING && (doc.released?.[f.fold] ?? 0) > 0);
    const queued: number[] = [];
    const waiting: number[] = [];
    const now = this.now();
    for (const f of folds) {
      const at = doc.released?.[f.fold] ?? rung;
      if (this.awaitsRungCheckpoint(doc, f, at, now)) {
        waiting.push(f.fold);
        continue;
      }
      if (!(await this.queue.enqueue({ runId, fold: f.fold, resumeAt: at, attempts: f.attempts })).duplicate) queued.push(f.fold);
    }
    if (queued.length > 0) this.logger.info('folds go on past a rung', { run: runId, rung, folds: queued });
    if (waiting.length > 0)
      this.logger.info('released folds wait for their pausing attempt to store the rung checkpoint', { run: runId, rung, folds: waiting });
    return queued;
  }

  /**
   * True while fold `f`, released at rung `at`, still belongs to the attempt
   * that paused it there (its token, which reported epoch `at`), that attempt
   * has not stored the epoch-`at` checkpoint yet, and the pause is younger
   * than `checkpointGraceMs`. Documents from before pausedAtMs never wait.
   */
  private awaitsRungCheckpoint(doc: RunDoc, f: FoldStatus, at: number, now: number): boolean {
    const token = doc.tokens[f.fold] ?? '';
    if (f.lastCheckpointEpoch >= at || token === '' || doc.reported?.[f.fold] !== `${token}:${at}`) return false;
    return now - (doc.pausedAtMs?.[f.fold] ?? 0) < this.checkpointGraceMs;
  }

  /**
   * Keeps the latest progress inside an epoch in the fold's status (not its
   * history), so watchers see images done, images/s and an ETA between epoch
   * reports. The coordinator stamps the time with its own clock.
   */
  async reportProgress(a: AttemptRef | undefined, p: FoldProgress | undefined): Promise<Ack> {
    if (!a || !p) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt and progress are required');
    for (const [field, v] of [
      ['images_per_sec', p.imagesPerSec],
      ['loss', p.loss],
      ['eta_seconds', p.etaSeconds],
    ] as const) {
      if (!Number.isFinite(v) || v < 0) throw new CoordinatorError('INVALID_ARGUMENT', `progress.${field} must be a finite number >= 0, got ${v}`);
    }
    if (p.images > p.totalImages || p.epoch < 1)
      throw new CoordinatorError(
        'INVALID_ARGUMENT',
        `progress must have epoch >= 1 and images <= total_images (epoch ${p.epoch}, ${p.images}/${p.totalImages})`,
      );
    const before = await this.load(a.runId);
    if (before.run.state === RunState.RUN_STATE_STOPPED || (before.paused?.[a.fold] ?? 0) > 0) return this.ackFor(before, a.fold);
    const doc = await this.mutate(a.runId, `fold ${a.fold} progress`, (d) => {
      if (d.run.state === RunState.RUN_STATE_STOPPED || (d.paused?.[a.fold] ?? 0) > 0) return d;
      const fold = this.checkToken(d, a);
      const progress = { ...p, updatedAtMs: this.now() };
      return { ...d, run: { ...d.run, folds: d.run.folds.map((x) => (x.fold === fold ? { ...x, progress } : x)) } };
    });
    return this.ackFor(doc, a.fold);
  }

  /**
   * Streams a checkpoint into object storage, checking the attempt token,
   * the size cap and the sha256 sent at the end. On a mismatch nothing is
   * stored and the fold keeps its previous checkpoint.
   */
  async uploadCheckpoint(
    header: CheckpointChunk_Header | undefined,
    data: AsyncIterable<Uint8Array>,
    sha256: () => string | undefined,
  ): Promise<{ key: string; size: number }> {
    if (!header?.attempt) throw new CoordinatorError('INVALID_ARGUMENT', 'the first message of a checkpoint upload must carry a header with the attempt');
    const a = header.attempt;
    const cur = await this.load(a.runId);
    const attemptNo = cur.run.folds[this.checkToken(cur, a)]?.attempts ?? 0;
    // An epoch checkpoint past the spec's epochs (or of epoch 0) would become the fold's resume point: refused.
    const epochs = cur.run.spec?.epochs ?? 0;
    if (header.kind !== CheckpointKind.CHECKPOINT_KIND_BEST && (header.epoch < 1 || (epochs > 0 && header.epoch > epochs)))
      throw new CoordinatorError('INVALID_ARGUMENT', `checkpoint upload: epoch ${header.epoch} is not one of the epochs 1..${epochs} of run ${a.runId}`);
    if (header.size > this.maxCheckpointBytes) {
      throw new CoordinatorError('RESOURCE_EXHAUSTED', `checkpoint of ${header.size} bytes exceeds the limit of ${this.maxCheckpointBytes}`);
    }
    const best = header.kind === CheckpointKind.CHECKPOINT_KIND_BEST;
    const key = best ? layout.foldBest(a.runId, a.fold, attemptNo) : layout.foldCheckpoint(a.runId, a.fold, header.epoch);
    let seen = 0;
    const max = this.maxCheckpointBytes;
    async function* capped(): AsyncGenerator<Uint8Array> {
      for await (const c of data) {
        seen += c.length;
        if (seen > max) throw new CoordinatorError('RESOURCE_EXHAUSTED', `checkpoint exceeds the limit of ${max} bytes`);
        yield c;
      }
    }
    let put;
    try {
      put = await this.store.put(key, capped(), { expectSha256: sha256 });
    } catch (err) {
      // The store wraps a failure of the stream it reads (the size cap, an upload gone silent) as S3_ERROR: the refusal itself is the answer.
      if (err instanceof StorageError && err.cause instanceof CoordinatorError) throw err.cause;
      if (err instanceof StorageError && err.code === 'CHECKSUM_MISMATCH')
        throw new CoordinatorError('DATA_LOSS', `checkpoint for run ${a.runId} fold ${a.fold}: ${err.message}`);
      throw err;
    }
    if (header.size > 0 && put.bytes !== header.size) {
      await this.store.remove(key).catch(() => undefined);
      throw new CoordinatorError('DATA_LOSS', `checkpoint announced ${header.size} bytes but ${put.bytes} arrived; it was discarded`);
    }
    this.observer.checkpointStored?.(put.bytes);
    const record = this.mutate(a.runId, `fold ${a.fold} checkpoint`, (d) => {
      const fold = this.checkToken(d, a);
      return {
        tokens: d.tokens,
        run: {
          ...d.run,
          folds: d.run.folds.map((x) => {
            if (x.fold !== fold) return x;
            if (best) return { ...x, bestCheckpoint: key };
            return header.epoch >= x.lastCheckpointEpoch ? { ...x, lastCheckpoint: key, lastCheckpointEpoch: header.epoch } : x;
          }),
        },
      };
    });
    await record.catch(async (err: unknown) => {
      // A best checkpoint of an attempt replaced (or cancelled) while it uploaded: its own key, which nothing records; removed.
      if (best && err instanceof CoordinatorError && (err.outcome === 'FAILED_PRECONDITION' || err.outcome === 'CANCELLED'))
        await this.store.remove(key).catch(() => undefined);
      throw err;
    });
    return { key, size: put.bytes };
  }

  /**
   * Records a fold's result; when it was the last fold, the run becomes
   * FINALIZING in the same update and is finalised in the background.
   * Answers `stop` when the run was stopped early before the result came (it
   * is not recorded: the fold stays STOPPED). A retry from the attempt whose
   * finish was recorded (its first answer was lost) is answered OK.
   */
  async finishFold(req: FinishFoldRequest): Promise<Ack> {
    const a = req.attempt;
    if (!a) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt is required');
    // A NaN would be stored as null and read back as 0: the "best" fold. Refused like an epoch report's.
    for (const [split, m] of [
      ['train', req.train],
      ['val', req.val],
      ['test', req.test],
    ] as const) {
      if (!m) continue;
      for (const [field, v] of [
        ['loss', m.loss],
        ['mse', m.mse],
        ['cosine', m.cosine ?? 0],
      ] as const) {
        if (!Number.isFinite(v)) throw new CoordinatorError('INVALID_ARGUMENT', `${split}.${field} must be a finite number, got ${v}`);
      }
      if (m.loss < 0 || m.mse < 0) throw new CoordinatorError('INVALID_ARGUMENT', `${split}: loss and mse must be >= 0 (loss ${m.loss}, mse ${m.mse})`);
    }
    const finishedBy = (d: RunDoc): boolean => a.token !== '' && d.finishedBy?.[a.fold] === a.token;
    // This attempt's finish landed already (its answer was lost and the client retried): done, not a stale attempt.
    if (finishedBy(await this.load(a.runId))) return GO_ON;
    let recorded = false;
    const doc = await this.mutate(a.runId, `fold ${a.fold} finished`, (d) => {
      recorded = finishedBy(d);
      if (recorded) return d;
      // A run stopped early keeps its folds STOPPED: a result that comes after the stop is not recorded.
      if (d.run.state === RunState.RUN_STATE_STOPPED) return d;
      const fold = this.checkToken(d, a);
      recorded = true;
      const tokens = [...d.tokens];
      tokens[fold] = '';
      const by = d.run.folds.map((x) => d.finishedBy?.[x.fold] ?? '');
      by[fold] = a.token;
      const result = {
        bestEpoch: req.bestEpoch,
        ...(req.train ? { train: req.train } : {}),
        ...(req.val ? { val: req.val } : {}),
        ...(req.test ? { test: req.test } : {}),
      };
      return {
        ...d,
        tokens,
        finishedBy: by,
        run: finalizingIfDone({ ...d.run, folds: d.run.folds.map((x) => (x.fold === fold ? endAttempt(x, FoldState.FOLD_STATE_SUCCEEDED, result) : x)) }),
      };
    });
    this.finalizeIfReady(doc);
    return recorded ? GO_ON : this.ackFor(doc, a.fold);
  }

  /**
   * The resume checkpoint StartAttempt gave attempt `req.attempt` cannot be
   * used (the object is gone, or it does not decode or fit the model): the
   * fold falls back to its newest stored epoch checkpoint older than that one,
   * or to a fresh start when there is none. One update sets it as the fold's
   * latest checkpoint and the epoch the attempt resumed from, drops the
   * history's epochs after it (the attempt trains and reports them again), and
   * records why in `checkpoint_fallback`. The bad object is left in place (it
   * is overwritten when its epoch is stored again). A retry, or a report of a
   * checkpoint that is no longer the fold's latest, changes nothing and gets
   * the fold's latest checkpoint. A checkpoint reported missing (reason
   * `NOT_FOUND: …`) that the store still has is kept: the answer is that same
   * checkpoint, which the worker downloads again.
   */
  async reportBadCheckpoint(req: ReportBadCheckpointRequest): Promise<ReportBadCheckpointResponse> {
    const a = req.attempt;
    if (!a || !req.checkpoint) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt and checkpoint are required');
    const latest = (f: FoldStatus | undefined): ReportBadCheckpointResponse =>
      f?.lastCheckpoint ? { resumeCheckpoint: f.lastCheckpoint, resumeEpoch: f.lastCheckpointEpoch } : { resumeCheckpoint: '', resumeEpoch: 0 };
    const cur = await this.load(a.runId);
    const fold = this.checkToken(cur, a);
    const bad = cur.run.folds[fold];
    if (bad?.lastCheckpoint !== req.checkpoint) return latest(bad);
    // "Missing" is checked: a checkpoint that is in fact stored is kept, and the worker told so (the same key: download it again).
    if (!(await confirmBadCheckpoint(this.store, req.checkpoint, req.reason))) {
      this.logger.warn('a worker reported a resume checkpoint missing that is stored; it is kept and the worker downloads it again', {
        run: a.runId,
        fold,
        checkpoint: req.checkpoint,
        reason: capError(req.reason),
      });
      return latest(bad);
    }
    // Epoch checkpoints are all kept, one key per epoch: the newest one below the bad epoch is the fallback.
    let epoch = 0;
    let key = '';
    for (const k of await this.store.list(layout.foldCheckpoints(a.runId, fold))) {
      const m = /epoch-(\d+)\.ckpt$/.exec(k);
      const e = m ? Number(m[1]) : NaN;
      if (e > epoch && e < bad.lastCheckpointEpoch && k === layout.foldCheckpoint(a.runId, fold, e)) {
        epoch = e;
        key = k;
      }
    }
    const note =
      `checkpoint ${req.checkpoint} (epoch ${bad.lastCheckpointEpoch}) could not be used: ${capError(req.reason || 'no reason given')}; ` +
      (key ? `restarted from epoch ${epoch} (${key})` : 'restarted from epoch 0 (no older checkpoint is stored)');
    const doc = await this.mutate(a.runId, `fold ${fold} checkpoint fallback`, (d) => {
      this.checkToken(d, a);
      const f = d.run.folds[fold];
      if (f?.lastCheckpoint !== req.checkpoint) return d;
      return {
        ...d,
        run: {
          ...d.run,
          folds: d.run.folds.map((x) =>
            x.fold === fold
              ? {
                  ...x,
                  lastCheckpoint: key,
                  lastCheckpointEpoch: epoch,
                  resumedFromEpoch: epoch,
                  history: x.history.filter((h) => h.epoch <= epoch),
                  checkpointFallback: note,
                }
              : x,
          ),
        },
      };
    });
    this.logger.warn('a fold falls back from a resume checkpoint that cannot be used', {
      run: a.runId,
      fold,
      checkpoint: req.checkpoint,
      // The worker's text, up to a whole gRPC message: capped like the note the fold keeps.
      reason: capError(req.reason),
      resumeFromEpoch: epoch,
      ...(key ? { resumeCheckpoint: key } : {}),
    });
    return latest(doc.run.folds[fold]);
  }

  /** Records a failed attempt: the fold is retried (PENDING), or, when `final`, FAILED (and the run may be finalised). */
  async failFold(req: FailFoldRequest): Promise<void> {
    const a = req.attempt;
    if (!a) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt is required');
    const doc = await this.mutate(a.runId, `fold ${a.fold} failed`, (d) => {
      if (d.run.state === RunState.RUN_STATE_STOPPED) return d;
      const fold = this.checkToken(d, a);
      const tokens = [...d.tokens];
      tokens[fold] = '';
      const state = req.final ? FoldState.FOLD_STATE_FAILED : FoldState.FOLD_STATE_PENDING;
      return {
        ...d,
        tokens,
        run: finalizingIfDone({ ...d.run, folds: d.run.folds.map((x) => (x.fold === fold ? endAttempt(x, state, { error: capError(req.error) }) : x)) }),
      };
    });
    if (req.final) {
      this.observer.foldFailed?.();
      this.finalizeIfReady(doc);
    }
  }

  /** A task ran out of deliveries (its worker died each time): mark the fold failed. */
  async onTaskGivenUp(task: FoldTask, deliveries: number): Promise<void> {
    let run: Run;
    try {
      run = (await this.load(task.runId)).run;
    } catch (err) {
      // No such run (its document was removed by hand, or the task names a malformed id): nothing to record, now or
      // later; thrown, the durable give-up consumer would hand the advisory back every minute for a week.
      if (err instanceof CoordinatorError && (err.outcome === 'NOT_FOUND' || err.outcome === 'INVALID_ARGUMENT')) {
        this.logger.warn('a task for a run that does not exist ran out of deliveries; nothing to record', {
          run: task.runId,
          fold: task.fold,
          deliveries,
          error: err.message,
        });
        return;
      }
      throw err;
    }
    const before = run.folds[task.fold];
    if (!before || FINAL_FOLD_STATES.includes(before.state)) return;
    const doc = await this.mutate(task.runId, `fold ${task.fold} gave up`, (d) => {
      const f = d.run.folds[task.fold];
      if (!f || FINAL_FOLD_STATES.includes(f.state)) return d;
      const tokens = [...d.tokens];
      tokens[task.fold] = '';
      const error = f.error
        ? `${capError(f.error)} (gave up after ${deliveries} deliveries)`
        : `gave up after ${deliveries} deliveries without a result (worker lost?)`;
      return {
        ...d,
        tokens,
        run: finalizingIfDone({ ...d.run, folds: d.run.folds.map((x) => (x.fold === task.fold ? endAttempt(x, FoldState.FOLD_STATE_FAILED, { error }) : x)) }),
      };
    });
    this.observer.foldFailed?.();
    this.finalizeIfReady(doc);
  }

  private finalizeIfReady(doc: RunDoc): void {
    if (doc.run.state === RunState.RUN_STATE_FINALIZING) this.schedule(doc.run.id, 'finalize');
  }

  /**
   * Finalises a run, idempotently: does nothing unless the run is
   * FINALIZING; exports the best fold's encoder and the report, writes
   * runs/RUN/summary.json (the same keys each time), then records SUCCEEDED,
   * or FAILED when a fold failed or the export cannot succeed (a missing
   * checkpoint, say; the error says why). A transient failure (storage or
   * NATS unreachable) is thrown, and the step is tried again later.
   */
  async finalize(runId: string): Promise<Run> {
    const run = (await this.load(runId)).run;
    if (run.state !== RunState.RUN_STATE_FINALIZING) return run;
    const signal = this.shutdown.signal;
    throwIfAborted(signal, `finalising run ${runId}`);
    const { ok, best } = succeededFolds(run);
    this.logger.info('finalising run', { run: runId, bestFold: best?.fold ?? null, succeededFolds: ok.length });
    const failed = run.folds.filter((f) => f.state === FoldState.FOLD_STATE_FAILED);
    const errors = failed.map((f) => `fold ${f.fold}: ${f.error}`);
    let encoder = '';
    if (best) {
      try {
        encoder = await this.exportArtifacts({ run, bestCheckpoint: best.bestCheckpoint, store: this.store, catalog: this.catalog, signal });
      } catch (err) {
        if (signal.aborted || isTransient(err)) throw err;
        errors.unshift(`encoder export or report failed: ${describeError(err)}`);
        this.logger.error('encoder export or report failed', { run: runId, error: describeError(err) });
      }
    } else if (errors.length === 0) errors.push('no fold succeeded with validation metrics');
    const state = errors.length > 0 ? RunState.RUN_STATE_FAILED : RunState.RUN_STATE_SUCCEEDED;
    const error = errors.join('; ');
    const summary = best ? summarize(ok, best, encoder) : undefined;
    await this.writeSummary({ ...run, state, error, ...(summary ? { summary } : {}) });
    throwIfAborted(signal, `finalising run ${runId}`);
    const done = await this.mutate(runId, 'finished', (d) =>
      d.run.state !== RunState.RUN_STATE_FINALIZING ? d : { ...d, run: { ...d.run, state, error, ...(summary ? { summary } : {}) } },
    );
    this.logger.info('run finished', { run: runId, state: RunState[done.run.state], failedFolds: failed.length });
    return done.run;
  }

  /** runs/RUN/summary.json: the run as it ends (the same bytes each time for the same run document). */
  private async writeSummary(run: Run): Promise<void> {
    await this.store.put(layout.summary(run.id), new TextEncoder().encode(JSON.stringify(Run.toJSON(run), null, 2)), { contentType: 'application/json' });
  }

  /** Runs the finalisation or cancel clean-up of `runId` in the background (once at a time per run), retrying transient failures with backoff. */
  private schedule(runId: string, kind: 'finalize' | 'cancel'): void {
    if (this.shutdown.signal.aborted || this.background.has(runId)) return;
    const p = this.retryUntilDone(runId, kind).finally(() => this.background.delete(runId));
    this.background.set(runId, p);
  }

  private async retryUntilDone(runId: string, kind: 'finalize' | 'cancel'): Promise<void> {
    const signal = this.shutdown.signal;
    const backoff = createBackoff({ initialDelayMs: this.retry.initialMs, maxDelayMs: this.retry.maxMs });
    for (let failures = 1; !signal.aborted; failures++) {
      try {
        await (kind === 'finalize' ? this.finalize(runId) : this.completeCancel(runId));
        return;
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof CoordinatorError && err.outcome === 'NOT_FOUND') {
          // The run's document is gone: there is nothing left to finish, now or later.
          this.logger.error(
            kind === 'finalize' ? 'finalising run abandoned: the run no longer exists' : 'cancel clean-up abandoned: the run no longer exists',
            { run: runId },
          );
          return;
        }
        const wait = Math.round(backoff.next());
        this.logger.warn(kind === 'finalize' ? 'finalising run failed; retrying' : 'cancel clean-up failed; retrying', {
          run: runId,
          error: describeError(err),
          failures,
          retryInMs: wait,
          transient: isTransient(err),
        });
        await pause(wait, signal);
      }
    }
  }

  /**
   * On start: finalises every FINALIZING run, completes every CANCELLING
   * run, and finalises runs left RUNNING or PENDING with every fold ended
   * (by a coordinator that stopped in between). The never-started folds of a
   * pending or running run are published again (deduplicated by message id),
   * so a submission cut short between recording the run and publishing its
   * tasks (a NATS blip) still runs: with `requeue` (on start) of every such
   * run; without (the sweep every minute) of those submitted within the
   * queue's duplicate window (REQUEUE_WINDOW_MS), where a second publish is
   * certain to be dropped as a duplicate. Returns the runs taken up;
   * the work goes on in the background (`idle()` waits for it). Without
   * `requeue`, runs this coordinator has seen end are not read again, but
   * every `fullRecoverEveryMs`: a minute's sweep reads only the live runs.
   * `each` is given every run read (start-up seeds the metrics with them:
   * one read of each document for both).
   */
  async recover(opts: { requeue?: boolean; each?: (run: Run) => void } = {}): Promise<{ finalizing: string[]; cancelling: string[]; requeued: string[] }> {
    const out = { finalizing: [] as string[], cancelling: [] as string[], requeued: [] as string[] };
    // Ended runs never change again: read once, then skipped, but for a full read now and then as a safety net.
    for (const key of this.index.recoveryKeys(await this.runs.keys(), opts.requeue === true)) {
      try {
        const v = await this.runs.get(key);
        if (!v) continue;
        let run = this.seen(decodeDoc(v.value).run);
        opts.each?.(run);
        if (run.state === RunState.RUN_STATE_CANCELLING) {
          out.cancelling.push(run.id);
          this.schedule(run.id, 'cancel');
          continue;
        }
        if (
          (run.state === RunState.RUN_STATE_RUNNING || run.state === RunState.RUN_STATE_PENDING) &&
          finalizingIfDone(run).state === RunState.RUN_STATE_FINALIZING
        ) {
          run = (await this.mutate(run.id, 'finalising (recovered)', (d) => ({ ...d, run: finalizingIfDone(d.run) }))).run;
        }
        if (run.state === RunState.RUN_STATE_FINALIZING) {
          out.finalizing.push(run.id);
          this.schedule(run.id, 'finalize');
        } else if (
          (run.state === RunState.RUN_STATE_RUNNING || run.state === RunState.RUN_STATE_PENDING) &&
          (opts.requeue === true || this.now() - run.createdAtMs < REQUEUE_WINDOW_MS)
        ) {
          for (const fold of await this.requeueNeverStarted(run)) out.requeued.push(`${run.id}.${fold}`);
        }
      } catch (err) {
        // One unreadable document must not keep the others from being recovered.
        this.logger.error('cannot recover run', { key, error: describeError(err) });
      }
    }
    if (out.finalizing.length + out.cancelling.length + out.requeued.length > 0) this.logger.info('recovering runs', out);
    return out;
  }

  /** Resolves once no finalisation or cancel clean-up is in progress. */
  async idle(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background.values()]);
  }

  /** Stops background work (a restarted coordinator's recover() resumes it) and waits for it to stop. */
  async close(): Promise<void> {
    this.shutdown.abort();
    await this.idle();
  }

  /** The best checkpoint of a fold, for download. */
  async openBestCheckpoint(runId: string, fold: number): Promise<{ key: string; size: number; stream: AsyncIterable<Uint8Array> }> {
    const doc = await this.load(runId);
    const f = doc.run.folds[fold];
    if (!f) throw new CoordinatorError('INVALID_ARGUMENT', `run ${runId} has no fold ${fold}`);
    if (!f.bestCheckpoint)
      throw new CoordinatorError('FAILED_PRECONDITION', `run ${runId} fold ${fold} has no best checkpoint yet (state ${FoldState[f.state]})`);
    const st = await this.store.stat(f.bestCheckpoint);
    if (!st) throw new CoordinatorError('DATA_LOSS', `checkpoint ${f.bestCheckpoint} is missing from storage`);
    return { key: f.bestCheckpoint, size: st.size, stream: await this.store.getStream(f.bestCheckpoint) };
  }
}
