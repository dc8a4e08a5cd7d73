import { randomBytes, randomUUID } from 'node:crypto';
import { createBackoff, CvcError, describeError, silentLogger, throwIfAborted, type Logger } from '@cvc/core';
import { parseManifest } from '@cvc/data';
import {
  CheckpointKind,
  ClusterJob,
  ClusterJobState,
  FoldState,
  RunState,
  type Ack,
  type AttemptRef,
  type CheckpointChunk_Header,
  type ClusterJobEvent,
  type ClusterJobProgress,
  type ClusterJobResult,
  type ClusterJobSpec,
  type FailFoldRequest,
  type FinishClusterJobRequest,
  type ReportBadCheckpointRequest,
  type ReportBadCheckpointResponse,
  type Run,
  type StartClusterAttemptRequest,
  type StartClusterAttemptResponse,
} from '@cvc/proto';
import { createDatasetCatalog, StorageError, type DatasetCatalog, type ObjectStore } from '@cvc/storage';
import type { DocStore, FoldTask, TaskQueue } from '@cvc/messaging';
import {
  checkJobSpecNames,
  decodeJobDoc,
  ENDING_JOB_STATES,
  FINAL_JOB_STATES,
  jobKey,
  jobLayout,
  jobStateName,
  resolveJobSpec,
  type ClusterJobDoc,
} from './cluster-job-doc.js';
import { isTransient, pause } from './coordinator.js';
import { confirmBadCheckpoint } from './bad-checkpoint.js';
import { capError, CoordinatorError } from './errors.js';
import { duplicateOfLiveAttempt, REQUEUE_WINDOW_MS } from './live-attempt.js';
import { watchUntilFinal } from './watch-doc.js';
import { DocIndex, FULL_RECOVER_EVERY_MS } from './doc-index.js';
import type { Page, PageRequest } from './paging.js';
import type { JobExporter } from './cluster-job-export.js';

/** Hooks for metrics. */
export interface ClusterJobObserver {
  jobChanged?(job: ClusterJob, reason: string): void;
}

export interface ClusterJobsDeps {
  readonly store: ObjectStore;
  readonly queue: TaskQueue;
  readonly jobs: DocStore<ClusterJobDoc>;
  /** The source run (NOT_FOUND when it does not exist): the coordinator's `getRun`. */
  readonly getRun: (runId: string) => Promise<Run>;
  readonly logger?: Logger;
  readonly now?: () => number;
  /** Largest checkpoint accepted, in bytes (default 512 MiB). */
  readonly maxCheckpointBytes?: number;
  readonly observer?: ClusterJobObserver;
  /** Writes the fine-tuned encoder and assignments.csv (default: the real export, loaded on first use). */
  readonly exportJob?: JobExporter;
  /** Backoff between tries of a finalisation that failed transiently (ms; default 1000 doubling to 30 000). */
  readonly finalizeRetry?: { readonly initialMs: number; readonly maxMs: number };
  /**
   * How often the periodic `recover()` reads every job document again (ms;
   * default FULL_RECOVER_EVERY_MS); in between it skips the jobs seen ended,
   * which never change again.
   */
  readonly fullRecoverEveryMs?: number;
}

/** The most progress entries a job keeps (the newest). */
const MAX_HISTORY = 2000;

const realExport: JobExporter = async (input) => (await import('./cluster-job-export.js')).exportClusterJob(input);

/** The raw result a worker sent, kept in object storage until the job's finalisation turned it into assignments.csv. */
export interface StoredAssignments {
  readonly assignments: readonly number[];
  readonly confidence: readonly number[];
}

export { REQUEUE_WINDOW_MS } from './live-attempt.js';

/**
 * Clustering jobs: validates and records them (a KV bucket of their own),
 * enqueues one task per job on the fold tasks' work queue, hands attempts and
 * tokens to workers, keeps their progress and CLUSTER checkpoints (the resume
 * point of the next attempt), and finishes a job in two steps like a run: the
 * worker's FinishClusterJob records FINALIZING (its assignments stored in
 * object storage), then an idempotent step exports the fine-tuned encoder,
 * writes assignments.csv and records SUCCEEDED. `recover()` repeats that step
 * after a restart.
 */
export class ClusterJobs {
  private readonly store: ObjectStore;
  private readonly queue: TaskQueue;
  private readonly jobs: DocStore<ClusterJobDoc>;
  private readonly catalog: DatasetCatalog;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly maxCheckpointBytes: number;
  private readonly observer: ClusterJobObserver;
  private readonly exportJob: JobExporter;
  private readonly retry: { readonly initialMs: number; readonly maxMs: number };
  private readonly background = new Map<string, Promise<void>>();
  private readonly shutdown = new AbortController();
  /** Creation times and ended jobs seen here (see DocIndex). */
  private readonly index: DocIndex;

  constructor(private readonly deps: ClusterJobsDeps) {
    this.store = deps.store;
    this.queue = deps.queue;
    this.jobs = deps.jobs;
    this.catalog = createDatasetCatalog(deps.store);
    this.logger = deps.logger ?? silentLogger;
    this.now = deps.now ?? Date.now;
    this.maxCheckpointBytes = deps.maxCheckpointBytes ?? 512 * 1024 * 1024;
    this.observer = deps.observer ?? {};
    this.exportJob = deps.exportJob ?? realExport;
    this.retry = deps.finalizeRetry ?? { initialMs: 1000, maxMs: 30_000 };
    this.index = new DocIndex({ prefix: 'job.', fullReadEveryMs: deps.fullRecoverEveryMs ?? FULL_RECOVER_EVERY_MS, now: this.now });
  }

  /** Feeds the index with `job` as read or written; returns it. */
  private seen(job: ClusterJob): ClusterJob {
    this.index.saw(job.id, job.createdAtMs, FINAL_JOB_STATES.includes(job.state));
    return job;
  }

  private checkId(id: string): void {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id)) throw new CoordinatorError('INVALID_ARGUMENT', `job id ${JSON.stringify(id)} is malformed`);
  }

  private async load(id: string): Promise<ClusterJobDoc> {
    this.checkId(id);
    const v = await this.jobs.get(jobKey(id));
    if (!v) throw new CoordinatorError('NOT_FOUND', `clustering job ${id} does not exist`);
    const doc = decodeJobDoc(v.value);
    this.seen(doc.job);
    return doc;
  }

  /** Applies `fn` with compare-and-set (it may run more than once, so it must be pure). */
  private async mutate(id: string, reason: string, fn: (doc: ClusterJobDoc) => ClusterJobDoc): Promise<ClusterJobDoc> {
    this.checkId(id);
    let value: ClusterJobDoc;
    try {
      ({ value } = await this.jobs.update(jobKey(id), (cur) => {
        const doc = decodeJobDoc(cur);
        const next = fn(doc);
        return next === doc ? cur : { ...next, job: { ...next.job, updatedAtMs: this.now() } };
      }));
    } catch (err) {
      if (err instanceof CvcError && err.code === 'NOT_FOUND') throw new CoordinatorError('NOT_FOUND', `clustering job ${id} does not exist`);
      throw err;
    }
    const doc = decodeJobDoc(value);
    this.seen(doc.job);
    this.observer.jobChanged?.(doc.job, reason);
    return doc;
  }

  /**
   * Validates a job against its source run and dataset, fills the defaults,
   * records the job PENDING and enqueues its task. The run must exist
   * (NOT_FOUND) and have SUCCEEDED (FAILED_PRECONDITION), the fold (default:
   * the run's best) must have a best checkpoint, and the dataset (default: the
   * run's, same version) must have the encoder's image shape.
   */
  async submit(input: ClusterJobSpec | undefined): Promise<ClusterJob> {
    const spec = checkJobSpecNames(input);
    let run: Run;
    try {
      run = await this.deps.getRun(spec.runId);
    } catch (err) {
      if (err instanceof CoordinatorError && err.outcome === 'NOT_FOUND')
        throw new CoordinatorError('NOT_FOUND', `spec.run_id: run ${spec.runId} does not exist`);
      throw err;
    }
    if (run.state !== RunState.RUN_STATE_SUCCEEDED)
      throw new CoordinatorError(
        'FAILED_PRECONDITION',
        `spec.run_id: run ${run.id} is ${RunState[run.state]?.replace('RUN_STATE_', '')}; a clustering job needs a SUCCEEDED run`,
      );
    const foldNo = spec.fold ?? run.summary?.bestFold;
    if (foldNo === undefined) throw new CoordinatorError('FAILED_PRECONDITION', `spec.fold: run ${run.id} has no summary with a best fold; name a fold`);
    const fold = run.folds[foldNo];
    if (!fold) throw new CoordinatorError('INVALID_ARGUMENT', `spec.fold: run ${run.id} has no fold ${foldNo} (it has ${run.folds.length})`);
    if (fold.state !== FoldState.FOLD_STATE_SUCCEEDED || !fold.bestCheckpoint)
      throw new CoordinatorError(
        'FAILED_PRECONDITION',
        `spec.fold: fold ${foldNo} of run ${run.id} is ${FoldState[fold.state]?.replace('FOLD_STATE_', '')} with ${fold.bestCheckpoint ? 'a' : 'no'} best checkpoint; pick a fold that succeeded`,
      );
    const dataset = spec.dataset || run.spec?.dataset || '';
    const version = spec.datasetVersion || (dataset === run.spec?.dataset && !spec.dataset ? run.datasetVersion : '');
    const imports = await this.catalog.list(dataset);
    const imp = version ? imports.find((i) => i.version === version) : imports[imports.length - 1];
    if (!imp)
      throw new CoordinatorError(
        'NOT_FOUND',
        imports.length === 0
          ? `spec.dataset: dataset '${dataset}' is not imported`
          : `spec.dataset_version: dataset '${dataset}' has no version ${version} (have ${imports.map((i) => i.version).join(', ')})`,
      );
    const input0 = modelInput(run);
    if (input0 && (input0.height !== imp.height || input0.width !== imp.width || input0.channels !== imp.channels))
      throw new CoordinatorError(
        'FAILED_PRECONDITION',
        `spec.dataset: the encoder of run ${run.id} takes ${input0.height}x${input0.width}x${input0.channels} images; dataset ${dataset} version ${imp.version} has ${imp.height}x${imp.width}x${imp.channels}`,
      );
    const manifest = parseManifest(new TextDecoder().decode(await this.store.getBytes(imp.manifest)), imp.manifest);
    const labelled = manifest.imageFolder?.labeled !== false;
    const resolved = resolveJobSpec(spec, labelled ? manifest.numClasses : undefined);
    const records = manifest.shards.reduce((s, e) => s + e.count, 0);
    if (records === 0) throw new CoordinatorError('FAILED_PRECONDITION', `spec.dataset: dataset ${dataset} version ${imp.version} has no records to cluster`);
    if (resolved.k > records) throw new CoordinatorError('INVALID_ARGUMENT', `spec.k: ${resolved.k} clusters for ${records} records of dataset ${dataset}`);
    const stamp = new Date(this.now()).toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const id = `${resolved.name || resolved.method}-${stamp}-${randomBytes(3).toString('hex')}`;
    const job = ClusterJob.fromPartial({
      id,
      spec: { ...resolved, dataset, datasetVersion: imp.version, fold: foldNo },
      state: ClusterJobState.CLUSTER_JOB_STATE_PENDING,
      fold: foldNo,
      datasetVersion: imp.version,
      createdAtMs: this.now(),
      updatedAtMs: this.now(),
      modelConfigJson: run.spec?.modelConfigJson ?? '',
    });
    await this.jobs.create(jobKey(id), { job, token: '', manifest: imp.manifest, sourceCheckpoint: fold.bestCheckpoint, records, finalCheckpoint: '' });
    this.seen(job);
    await this.queue.enqueue({ runId: run.id, fold: foldNo, jobId: id });
    this.logger.info('clustering job submitted', { job: id, run: run.id, fold: foldNo, method: resolved.method, k: resolved.k, dataset, version: imp.version });
    this.observer.jobChanged?.(job, 'submitted');
    return job;
  }

  async get(id: string): Promise<ClusterJob> {
    return (await this.load(id)).job;
  }

  /** Every job, newest first (reads every job document). */
  async list(): Promise<ClusterJob[]> {
    const out: ClusterJob[] = [];
    for (const k of await this.jobs.keys()) {
      const v = await this.jobs.get(k);
      if (v) out.push(this.seen(decodeJobDoc(v.value).job));
    }
    return out.sort((a, b) => b.createdAtMs - a.createdAtMs);
  }

  /**
   * One page of the jobs, newest first (see paging.ts; INVALID_ARGUMENT for a
   * bad page_token): reads the page's documents, and once those of jobs not
   * seen here yet, not every document each time (see DocIndex.page).
   */
  async listPage(req: PageRequest): Promise<Page<ClusterJob>> {
    return this.index.page(await this.jobs.keys(), (k) => this.jobs.get(k).then((v) => (v ? this.seen(decodeJobDoc(v.value).job) : undefined)), req);
  }

  /** Cancels a job that has not ended: CANCELLED at once, and its worker is told to stop at its next report. An ended or finalising job is left as it is. */
  async cancel(id: string): Promise<ClusterJob> {
    const doc = await this.mutate(id, 'cancelled', (d) =>
      ENDING_JOB_STATES.includes(d.job.state) ? d : { ...d, token: '', job: { ...d.job, state: ClusterJobState.CLUSTER_JOB_STATE_CANCELLED } },
    );
    if (doc.job.state === ClusterJobState.CLUSTER_JOB_STATE_CANCELLED) this.logger.info('clustering job cancelled', { job: id });
    return doc.job;
  }

  /** Sends the job now and after every change until it ends or `signal` aborts. */
  async watch(id: string, send: (e: ClusterJobEvent) => void, signal: AbortSignal): Promise<void> {
    const first = await this.load(id);
    send({ job: first.job, reason: 'current' });
    if (FINAL_JOB_STATES.includes(first.job.state)) return;
    await watchUntilFinal(
      { store: this.jobs, key: jobKey(id), view: (v) => decodeJobDoc(v).job, isFinal: (j) => FINAL_JOB_STATES.includes(j.state), what: `clustering job ${id}` },
      (job) => send({ job, reason: 'update' }),
      signal,
    );
  }

  /**
   * Begins an attempt at a job and hands out its token, the source checkpoint
   * and the resume point. Refused (proceed false: the worker acknowledges and
   * drops the task) when the job is ending, or when this is the first
   * delivery of a task for a RUNNING job whose attempt was heard from less
   * than half an ack_wait ago (a duplicate task; see live-attempt.ts).
   */
  async startAttempt(req: StartClusterAttemptRequest): Promise<StartClusterAttemptResponse> {
    const skip = (reason: string): StartClusterAttemptResponse => ({
      proceed: false,
      token: '',
      manifest: '',
      sourceCheckpoint: '',
      resumeCheckpoint: '',
      reason,
    });
    const cur = await this.load(req.jobId);
    const refusal = (d: ClusterJobDoc): string | undefined => {
      if (ENDING_JOB_STATES.includes(d.job.state)) return `job is ${jobStateName(d.job.state)}`;
      // A second task for a job whose attempt is alive (a restart published one more after the queue's duplicate window,
      // say) is a duplicate: taking the token would make the two attempts steal it from each other. Acked and dropped.
      const now = this.now();
      if (d.job.state === ClusterJobState.CLUSTER_JOB_STATE_RUNNING && d.token && duplicateOfLiveAttempt(req.delivery, d.liveAtMs, now, this.queue.ackWaitMs))
        return `job is being run by a live attempt (worker ${d.job.worker || '?'}, heard from ${Math.round((now - (d.liveAtMs ?? 0)) / 1000)} s ago); this task is a duplicate`;
      return undefined;
    };
    const early = refusal(cur);
    if (early) return skip(early);
    const token = randomUUID();
    const doc = await this.mutate(req.jobId, 'attempt started', (d) =>
      refusal(d)
        ? d
        : {
            ...d,
            token,
            liveAtMs: this.now(),
            job: {
              ...d.job,
              state: ClusterJobState.CLUSTER_JOB_STATE_RUNNING,
              attempts: d.job.attempts + 1,
              worker: req.worker,
              error: '',
              resumedFromIteration: d.job.lastCheckpoint ? d.job.lastCheckpointIteration : 0,
            },
          },
    );
    if (doc.token !== token) return skip(refusal(doc) ?? 'another attempt owns this job');
    this.logger.info('clustering attempt started', { job: req.jobId, worker: req.worker, delivery: req.delivery, resume: doc.job.lastCheckpointIteration });
    return {
      proceed: true,
      token,
      job: doc.job,
      manifest: doc.manifest,
      sourceCheckpoint: doc.sourceCheckpoint,
      resumeCheckpoint: doc.job.lastCheckpoint,
      reason: '',
    };
  }

  /** Throws unless `a` is the job's current attempt (CANCELLED when the job was cancelled, FAILED_PRECONDITION for a stale token). */
  private checkToken(doc: ClusterJobDoc, a: AttemptRef | undefined): void {
    if (!a?.jobId) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt with job_id is required');
    if (doc.job.state === ClusterJobState.CLUSTER_JOB_STATE_CANCELLED) throw new CoordinatorError('CANCELLED', `clustering job ${a.jobId} was cancelled`);
    if (!a.token || doc.token !== a.token)
      throw new CoordinatorError('FAILED_PRECONDITION', `stale attempt token for clustering job ${a.jobId}: another attempt owns this job`);
  }

  /** Appends a refresh's measurements to the job's history; answers stop when the job was cancelled (the worker ends after its batch). */
  async reportProgress(a: AttemptRef | undefined, p: ClusterJobProgress | undefined): Promise<Ack> {
    if (!a?.jobId || !p) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt (with job_id) and progress are required');
    for (const [field, v] of [
      ['loss', p.loss],
      ['cluster_loss', p.clusterLoss],
      ['reconstruction_loss', p.reconstructionLoss],
      ['seconds', p.seconds],
    ] as const) {
      if (!Number.isFinite(v) || v < 0) throw new CoordinatorError('INVALID_ARGUMENT', `progress.${field} must be a finite number >= 0, got ${v}`);
    }
    for (const [field, v] of [
      ['changed', p.changed],
      ['acc', p.acc],
      ['nmi', p.nmi],
      ['ari', p.ari],
    ] as const) {
      if (v !== undefined && (!Number.isFinite(v) || v < (field === 'ari' ? -1 : 0) || v > 1))
        throw new CoordinatorError('INVALID_ARGUMENT', `progress.${field} must be a finite number in [${field === 'ari' ? -1 : 0}, 1], got ${v}`);
    }
    const cur = await this.load(a.jobId);
    if (cur.job.state === ClusterJobState.CLUSTER_JOB_STATE_CANCELLED) return { stop: true, reason: `clustering job ${a.jobId} was cancelled` };
    // The same report again (a retry, or the worker's cancel poll between refreshes): nothing to write but, now and
    // then, the time the attempt was last heard from (what keeps a duplicate task from taking the job over).
    if (cur.reported === `${a.token}:${p.iteration}`) {
      this.checkToken(cur, a);
      if (this.now() - (cur.liveAtMs ?? 0) >= this.queue.ackWaitMs / 6)
        await this.mutate(a.jobId, `progress ${p.iteration} again`, (d) => {
          if (d.job.state === ClusterJobState.CLUSTER_JOB_STATE_CANCELLED) return d;
          this.checkToken(d, a);
          return { ...d, liveAtMs: this.now() };
        });
      return { stop: false, reason: '' };
    }
    await this.mutate(a.jobId, `progress ${p.iteration}`, (d) => {
      if (d.job.state === ClusterJobState.CLUSTER_JOB_STATE_CANCELLED) return d;
      this.checkToken(d, a);
      const mark = `${a.token}:${p.iteration}`;
      if (d.reported === mark) return d;
      const entry = { ...p, updatedAtMs: this.now() };
      const history = [...d.job.history.filter((h) => h.iteration < p.iteration), entry].slice(-MAX_HISTORY);
      return { ...d, reported: mark, liveAtMs: entry.updatedAtMs, job: { ...d.job, history } };
    });
    return { stop: false, reason: '' };
  }

  /**
   * Streams a job checkpoint into object storage (CLUSTER: a resume point,
   * `epoch` = iteration; CLUSTER_FINAL: the fine-tuned model), checking the
   * token, the size cap and the sha256.
   */
  async uploadCheckpoint(
    header: CheckpointChunk_Header | undefined,
    data: AsyncIterable<Uint8Array>,
    sha256: () => string | undefined,
  ): Promise<{ key: string; size: number }> {
    const a = header?.attempt;
    if (!header || !a?.jobId) throw new CoordinatorError('INVALID_ARGUMENT', 'a job checkpoint upload needs a header with the attempt and its job_id');
    if (header.kind !== CheckpointKind.CHECKPOINT_KIND_CLUSTER && header.kind !== CheckpointKind.CHECKPOINT_KIND_CLUSTER_FINAL)
      throw new CoordinatorError(
        'INVALID_ARGUMENT',
        `a clustering job stores CLUSTER or CLUSTER_FINAL checkpoints, not ${CheckpointKind[header.kind] ?? header.kind}`,
      );
    this.checkToken(await this.load(a.jobId), a);
    if (header.size > this.maxCheckpointBytes)
      throw new CoordinatorError('RESOURCE_EXHAUSTED', `checkpoint of ${header.size} bytes exceeds the limit of ${this.maxCheckpointBytes}`);
    const final = header.kind === CheckpointKind.CHECKPOINT_KIND_CLUSTER_FINAL;
    const key = final ? jobLayout.final(a.jobId) : jobLayout.checkpoint(a.jobId, header.epoch);
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
        throw new CoordinatorError('DATA_LOSS', `checkpoint for clustering job ${a.jobId}: ${err.message}`);
      throw err;
    }
    if (header.size > 0 && put.bytes !== header.size) {
      await this.store.remove(key).catch(() => undefined);
      throw new CoordinatorError('DATA_LOSS', `checkpoint announced ${header.size} bytes but ${put.bytes} arrived; it was discarded`);
    }
    // The checkpoint this one replaces as the job's latest: nothing reads it any more once the update lands.
    let replaced = '';
    await this.mutate(a.jobId, final ? 'final checkpoint' : `checkpoint ${header.epoch}`, (d) => {
      this.checkToken(d, a);
      replaced = '';
      if (final) return { ...d, finalCheckpoint: key, liveAtMs: this.now() };
      if (header.epoch < d.job.lastCheckpointIteration) return d;
      if (d.job.lastCheckpoint && d.job.lastCheckpoint !== key) replaced = d.job.lastCheckpoint;
      return { ...d, liveAtMs: this.now(), job: { ...d.job, lastCheckpoint: key, lastCheckpointIteration: header.epoch } };
    });
    // A job keeps one resumable state, not one per refresh (about 140 for a default DCEC job, each with every record's
    // assignment and target row). Best effort: a leftover is only storage.
    if (replaced)
      await this.store
        .remove(replaced)
        .catch((err: unknown) => this.logger.warn('could not remove a superseded job checkpoint', { job: a.jobId, key: replaced, error: describeError(err) }));
    return { key, size: put.bytes };
  }

  /**
   * Records a finished fine-tune: checks the assignments (one per record of the
   * dataset, each below k, confidences in [0, 1]), stores them, and records
   * FINALIZING; the encoder export and assignments.csv follow in the background.
   */
  async finish(req: FinishClusterJobRequest): Promise<void> {
    const a = req.attempt;
    if (!a?.jobId) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt with job_id is required');
    const cur = await this.load(a.jobId);
    // This attempt's finish landed already (its answer was lost and the client retried): done, not a stale attempt.
    if (a.token !== '' && cur.finishedBy === a.token) return;
    this.checkToken(cur, a);
    if (!cur.finalCheckpoint)
      throw new CoordinatorError('FAILED_PRECONDITION', `clustering job ${a.jobId}: upload the CLUSTER_FINAL checkpoint before finishing`);
    const k = cur.job.spec?.k ?? 0;
    if (req.assignments.length !== cur.records || req.confidence.length !== cur.records)
      throw new CoordinatorError(
        'INVALID_ARGUMENT',
        `assignments (${req.assignments.length}) and confidence (${req.confidence.length}) must have one entry per record of the dataset (${cur.records})`,
      );
    const badA = req.assignments.findIndex((c) => !Number.isInteger(c) || c < 0 || c >= k);
    if (badA >= 0) throw new CoordinatorError('INVALID_ARGUMENT', `assignments[${badA}] is ${req.assignments[badA]}; clusters are 0..${k - 1}`);
    const badC = req.confidence.findIndex((c) => !Number.isFinite(c) || c < 0 || c > 1 + 1e-6);
    if (badC >= 0) throw new CoordinatorError('INVALID_ARGUMENT', `confidence[${badC}] is ${req.confidence[badC]}; it must be in [0, 1]`);
    const r = req.result;
    for (const [field, v] of [
      ['initial_acc', r?.initialAcc],
      ['initial_nmi', r?.initialNmi],
      ['acc', r?.acc],
      ['nmi', r?.nmi],
      ['ari', r?.ari],
    ] as const) {
      if (v !== undefined && !Number.isFinite(v)) throw new CoordinatorError('INVALID_ARGUMENT', `result.${field} must be a finite number, got ${v}`);
    }
    const stored: StoredAssignments = { assignments: req.assignments, confidence: req.confidence };
    await this.store.put(jobLayout.result(a.jobId), new TextEncoder().encode(JSON.stringify(stored)), { contentType: 'application/json' });
    const result: ClusterJobResult = {
      encoder: '',
      assignments: '',
      iterations: r?.iterations ?? 0,
      stopReason: r?.stopReason ?? '',
      artifacts: {},
      ...(r?.initialAcc !== undefined ? { initialAcc: r.initialAcc } : {}),
      ...(r?.initialNmi !== undefined ? { initialNmi: r.initialNmi } : {}),
      ...(r?.acc !== undefined ? { acc: r.acc } : {}),
      ...(r?.nmi !== undefined ? { nmi: r.nmi } : {}),
      ...(r?.ari !== undefined ? { ari: r.ari } : {}),
    };
    await this.mutate(a.jobId, 'finalizing', (d) => {
      this.checkToken(d, a);
      return { ...d, token: '', finishedBy: a.token, job: { ...d.job, state: ClusterJobState.CLUSTER_JOB_STATE_FINALIZING, result } };
    });
    this.schedule(a.jobId);
  }

  /**
   * The resume checkpoint StartClusterAttempt gave attempt `req.attempt`
   * cannot be used (gone, or it does not decode or fit the job): the job falls
   * back to its newest stored CLUSTER checkpoint older than that one (a job
   * keeps one, so mostly there is none), or to a fresh start from the source
   * fold's best checkpoint, as a new job does. One update sets it as the
   * job's latest checkpoint and the iteration the attempt resumed from, drops
   * the history after it (trained and reported again) and records why in
   * `checkpoint_fallback`. No
   * delivery is used up. A retry, or a report of a checkpoint that is no
   * longer the job's latest, changes nothing and gets the job's latest; a
   * checkpoint reported missing that the store has is kept, and that same
   * checkpoint is the answer (the worker downloads it again).
   */
  async reportBadCheckpoint(req: ReportBadCheckpointRequest): Promise<ReportBadCheckpointResponse> {
    const a = req.attempt;
    if (!a?.jobId || !req.checkpoint) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt (with job_id) and checkpoint are required');
    const latest = (d: ClusterJobDoc): ReportBadCheckpointResponse =>
      d.job.lastCheckpoint ? { resumeCheckpoint: d.job.lastCheckpoint, resumeEpoch: d.job.lastCheckpointIteration } : { resumeCheckpoint: '', resumeEpoch: 0 };
    const cur = await this.load(a.jobId);
    this.checkToken(cur, a);
    if (cur.job.lastCheckpoint !== req.checkpoint) return latest(cur);
    const reason = capError(req.reason || 'no reason given');
    if (!(await confirmBadCheckpoint(this.store, req.checkpoint, req.reason))) {
      this.logger.warn('a worker reported a job checkpoint missing that is stored; it is kept and the worker downloads it again', {
        job: a.jobId,
        checkpoint: req.checkpoint,
        reason,
      });
      return latest(cur);
    }
    const badIteration = cur.job.lastCheckpointIteration;
    let iteration = 0;
    let key = '';
    for (const k of await this.store.list(`${jobLayout.prefix(a.jobId)}/checkpoints/`)) {
      const m = /iter-(\d+)\.ckpt$/.exec(k);
      const i = m ? Number(m[1]) : NaN;
      if (i > iteration && i < badIteration && k === jobLayout.checkpoint(a.jobId, i)) {
        iteration = i;
        key = k;
      }
    }
    const note =
      `checkpoint ${req.checkpoint} (iteration ${badIteration}) could not be used: ${reason}; ` +
      (key
        ? `resumed from iteration ${iteration} (${key})`
        : "restarted from iteration 0 (the source fold's best checkpoint; no older job checkpoint is stored)");
    const doc = await this.mutate(a.jobId, 'checkpoint fallback', (d) => {
      this.checkToken(d, a);
      if (d.job.lastCheckpoint !== req.checkpoint) return d;
      return {
        ...d,
        job: {
          ...d.job,
          lastCheckpoint: key,
          lastCheckpointIteration: iteration,
          resumedFromIteration: iteration,
          history: d.job.history.filter((h) => h.iteration <= iteration),
          checkpointFallback: note,
        },
      };
    });
    this.logger.warn('a clustering job falls back from a resume checkpoint that cannot be used', {
      job: a.jobId,
      checkpoint: req.checkpoint,
      reason,
      resumeFromIteration: iteration,
      ...(key ? { resumeCheckpoint: key } : {}),
    });
    return latest(doc);
  }

  /** A failed attempt (FailFold with job_id): the job goes back to PENDING for the next delivery, or FAILED when `final`. */
  async fail(req: FailFoldRequest): Promise<void> {
    const a = req.attempt;
    if (!a?.jobId) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt with job_id is required');
    await this.mutate(a.jobId, req.final ? 'failed' : 'attempt failed', (d) => {
      this.checkToken(d, a);
      const state = req.final ? ClusterJobState.CLUSTER_JOB_STATE_FAILED : ClusterJobState.CLUSTER_JOB_STATE_PENDING;
      return { ...d, token: '', job: { ...d.job, state, error: capError(req.error) } };
    });
  }

  /** The job's task ran out of deliveries (its worker died each time): FAILED with the reason. */
  async onTaskGivenUp(task: FoldTask, deliveries: number): Promise<void> {
    if (!task.jobId) return;
    const before = await this.load(task.jobId);
    if (ENDING_JOB_STATES.includes(before.job.state)) return;
    await this.mutate(task.jobId, 'gave up', (d) => {
      if (ENDING_JOB_STATES.includes(d.job.state)) return d;
      const error = d.job.error
        ? `${capError(d.job.error)} (gave up after ${deliveries} deliveries)`
        : `gave up after ${deliveries} deliveries without a result (worker lost?)`;
      return { ...d, token: '', job: { ...d.job, state: ClusterJobState.CLUSTER_JOB_STATE_FAILED, error } };
    });
    this.logger.error('clustering job failed: its task was given up', { job: task.jobId, deliveries });
  }

  /**
   * Finalises a job, idempotently: does nothing unless it is FINALIZING;
   * exports the fine-tuned encoder (cluster-jobs/JOB/encoder/) and writes
   * assignments.csv (the same keys each time), then records SUCCEEDED, or
   * FAILED when the export cannot succeed. A transient failure is thrown and
   * the step is tried again later.
   */
  async finalize(id: string): Promise<ClusterJob> {
    const doc = await this.load(id);
    if (doc.job.state !== ClusterJobState.CLUSTER_JOB_STATE_FINALIZING) return doc.job;
    const signal = this.shutdown.signal;
    throwIfAborted(signal, `finalising clustering job ${id}`);
    let update: Partial<ClusterJob>;
    try {
      const out = await this.exportJob({ job: doc.job, finalCheckpoint: doc.finalCheckpoint, manifest: doc.manifest, store: this.store, signal });
      update = {
        state: ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED,
        result: {
          ...(doc.job.result ?? { iterations: 0, stopReason: '', artifacts: {} }),
          encoder: out.encoder,
          assignments: out.assignments,
          artifacts: out.artifacts ?? {},
        },
      };
    } catch (err) {
      if (signal.aborted || isTransient(err)) throw err;
      this.logger.error('clustering job export failed', { job: id, error: describeError(err) });
      update = { state: ClusterJobState.CLUSTER_JOB_STATE_FAILED, error: `encoder export or assignments failed: ${describeError(err)}` };
    }
    throwIfAborted(signal, `finalising clustering job ${id}`);
    const done = await this.mutate(id, 'finished', (d) =>
      d.job.state !== ClusterJobState.CLUSTER_JOB_STATE_FINALIZING ? d : { ...d, job: { ...d.job, ...update } },
    );
    this.logger.info('clustering job finished', { job: id, state: jobStateName(done.job.state) });
    return done.job;
  }

  private schedule(id: string): void {
    if (this.shutdown.signal.aborted || this.background.has(id)) return;
    const p = this.retryUntilDone(id).finally(() => this.background.delete(id));
    this.background.set(id, p);
  }

  private async retryUntilDone(id: string): Promise<void> {
    const signal = this.shutdown.signal;
    const backoff = createBackoff({ initialDelayMs: this.retry.initialMs, maxDelayMs: this.retry.maxMs });
    for (let failures = 1; !signal.aborted; failures++) {
      try {
        await this.finalize(id);
        return;
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof CoordinatorError && err.outcome === 'NOT_FOUND') {
          this.logger.error('finalising clustering job abandoned: the job no longer exists', { job: id });
          return;
        }
        const wait = Math.round(backoff.next());
        this.logger.warn('finalising clustering job failed; retrying', { job: id, error: describeError(err), failures, retryInMs: wait });
        await pause(wait, signal);
      }
    }
  }

  /**
   * Finalises every FINALIZING job (a coordinator died between the worker's
   * finish and SUCCEEDED) and publishes again the task of never-started
   * PENDING jobs (deduplicated by message id): with `requeue` (at start-up)
   * of every such job; without (the sweep every minute) of those submitted
   * within the queue's duplicate window (REQUEUE_WINDOW_MS), where a second
   * publish is certain to be dropped as a duplicate. So a job whose publish
   * failed at submit gets its task within a minute, not at the next restart.
   * Without `requeue`, jobs seen ended are not read again, but every
   * `fullRecoverEveryMs`. `each` is given every job read (start-up seeds the
   * metrics with them: one read of each document for both).
   */
  async recover(opts: { requeue?: boolean; each?: (job: ClusterJob) => void } = {}): Promise<{ finalizing: string[]; requeued: string[] }> {
    const out = { finalizing: [] as string[], requeued: [] as string[] };
    for (const key of this.index.recoveryKeys(await this.jobs.keys(), opts.requeue === true)) {
      try {
        const v = await this.jobs.get(key);
        if (!v) continue;
        const job = this.seen(decodeJobDoc(v.value).job);
        opts.each?.(job);
        if (job.state === ClusterJobState.CLUSTER_JOB_STATE_FINALIZING) {
          out.finalizing.push(job.id);
          this.schedule(job.id);
        } else if (
          job.state === ClusterJobState.CLUSTER_JOB_STATE_PENDING &&
          job.attempts === 0 &&
          (opts.requeue === true || this.now() - job.createdAtMs < REQUEUE_WINDOW_MS)
        ) {
          const { duplicate } = await this.queue.enqueue({ runId: job.spec?.runId ?? '', fold: job.fold, jobId: job.id });
          if (!duplicate) out.requeued.push(job.id);
        }
      } catch (err) {
        this.logger.error('cannot recover clustering job', { key, error: describeError(err) });
      }
    }
    if (out.finalizing.length + out.requeued.length > 0) this.logger.info('recovering clustering jobs', out);
    return out;
  }

  /** Resolves once no finalisation is in progress. */
  async idle(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background.values()]);
  }

  /** Stops background work (a restarted coordinator's recover() resumes it) and waits for it. */
  async close(): Promise<void> {
    this.shutdown.abort();
    await this.idle();
  }

  /**
   * A finished job's artifact for download: `model.json` or `weights.bin` (the
   * encoder), `assignments.csv`, or a name of result.artifacts.
   */
  async openArtifact(id: string, name: string): Promise<{ key: string; size: number; stream: AsyncIterable<Uint8Array> }> {
    const job = (await this.load(id)).job;
    const r = job.result;
    if (job.state !== ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED || !r)
      throw new CoordinatorError('FAILED_PRECONDITION', `clustering job ${id} is ${jobStateName(job.state)}; its artifacts exist once it SUCCEEDED`);
    const key =
      name === 'model.json' || name === 'weights.bin'
        ? `${r.encoder}/${name}`
        : name === 'assignments.csv'
          ? r.assignments
          : Object.hasOwn(r.artifacts, name)
            ? (r.artifacts[name] ?? '')
            : '';
    if (!key)
      throw new CoordinatorError(
        'NOT_FOUND',
        `clustering job ${id} has no artifact ${JSON.stringify(name)} (have model.json, weights.bin, assignments.csv${Object.keys(r.artifacts)
          .map((n) => `, ${n}`)
          .join('')})`,
      );
    const st = await this.store.stat(key);
    if (!st) throw new CoordinatorError('DATA_LOSS', `artifact ${key} of clustering job ${id} is missing from storage`);
    return { key, size: st.size, stream: await this.store.getStream(key) };
  }
}

/** The image shape the run's encoder takes, from its resolved model config (undefined for runs from before configs). */
function modelInput(run: Run): { height: number; width: number; channels: number } | undefined {
  if (!run.spec?.modelConfigJson) return undefined;
  try {
    const cfg = JSON.parse(run.spec.modelConfigJson) as { input?: { height: number; width: number; channels: number } };
    return cfg.input;
  } catch (err) {
    throw new CoordinatorError('DATA_LOSS', `run ${run.id} has a stored model config that is not JSON: ${describeError(err)}`);
  }
}
