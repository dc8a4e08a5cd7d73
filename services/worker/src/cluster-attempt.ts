import { status, type ServiceError } from '@grpc/grpc-js';
import { backoffDelay, CancelledError, describeError, retry, type Logger } from '@cvc/core';
import { decodeCheckpoint, encodeCheckpoint } from '@cvc/model';
import { CheckpointKind, type AttemptRef, type ClusterJobProgress, type ClusterJobSpec } from '@cvc/proto';
import type { TaskDelivery } from '@cvc/messaging';
import type { ObjectStore } from '@cvc/storage';
import type { ClusterCoordinatorApi } from './cluster-api.js';
import { ackOrLog } from './ack.js';
import { resumeWithFallback } from './checkpoint-fallback.js';
import { isAuthError, isCoordinatorCancel } from './client.js';
import type { CoordinatorApi } from './coordinator-api.js';
import { WorkerError } from './errors.js';
import { isBadCheckpoint, isPermanentFailure } from './failures.js';
import { abortableSleep, DEFAULT_HUNG_MS, holdRetryable } from './hold.js';
import type { FineTuneFn, FineTuneOptions, FineTuneProgress } from './fine-tune.js';
import type { ShardCache } from './shards.js';

/** What a clustering attempt uses of its worker. */
export interface ClusterAttemptDeps {
  readonly worker: string;
  readonly store: ObjectStore;
  readonly shards: ShardCache;
  readonly coordinator: CoordinatorApi;
  readonly cluster: ClusterCoordinatorApi;
  readonly fineTune: FineTuneFn;
  readonly logger: Logger;
  /** Uniform [0, 1) source for the nak backoff's jitter. */
  readonly random: () => number;
  /** Told about every refresh (metrics). */
  readonly onProgress?: (job: string, method: string, p: FineTuneProgress) => void;
  readonly onAttempt?: (outcome: 'started' | 'succeeded' | 'failed' | 'interrupted' | 'skipped' | 'abandoned' | 'cancelled') => void;
  /**
   * Between refreshes, the last progress report is sent again this often
   * (ms; default 10 000): the coordinator keeps it once and answers stop if
   * the job was cancelled meanwhile, so a cancel lands within this time, not
   * at the next refresh (which may be the end of the fine-tune).
   */
  readonly cancelPollMs?: number;
  /** First wait before StartClusterAttempt is tried again while the coordinator is unreachable, in ms (default 500, growing to 10 s). */
  readonly startRetryMs?: number;
  /** How long StartClusterAttempt is held for a coordinator that takes calls but answers none, in ms (default DEFAULT_HUNG_MS; see hold.ts). */
  readonly hungMs?: number;
  /**
   * Waits before a resume checkpoint found missing, which the coordinator has, is downloaded again (default: a timer
   * that the attempt's `signal` ends, with CancelledError: stop() does not wait it out).
   */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

const code = (err: unknown): status | undefined => (err as Partial<ServiceError>).code;

/** The coordinator refused a report because the job was cancelled (CANCELLED) or another attempt owns it (FAILED_PRECONDITION). */
class AttemptEnded extends Error {
  constructor(
    readonly why: 'cancelled' | 'stale',
    message: string,
  ) {
    super(message);
  }
}

/** The spec fields a fine-tune needs, all of which the coordinator fills at submission. */
function resolvedSpec(
  jobId: string,
  s: ClusterJobSpec | undefined,
): Pick<FineTuneOptions, 'method' | 'k' | 'gamma' | 'updateInterval' | 'tol' | 'maxIterations' | 'batchSize' | 'learningRate' | 'seed'> {
  const { k, gamma, updateInterval, tol, maxIterations, batchSize, learningRate, seed } = s ?? {};
  const method = s?.method;
  if (method !== 'dcec' && method !== 'idec' && method !== 'dec')
    throw new WorkerError('NO_SPEC', `the coordinator sent clustering job ${jobId} with method ${JSON.stringify(method ?? '')}, not dcec, idec or dec`);
  if ([k, gamma, updateInterval, tol, maxIterations, batchSize, learningRate, seed].some((v) => v === undefined))
    throw new WorkerError(
      'NO_SPEC',
      `the coordinator sent clustering job ${jobId} without a fully resolved spec (method, k, gamma, intervals, batch size, ...)`,
    );
  return {
    method,
    k: k as number,
    gamma: gamma,
    updateInterval: updateInterval,
    tol: tol,
    maxIterations: maxIterations as number,
    batchSize: batchSize,
    learningRate: learningRate,
    seed: seed as number,
  };
}

/**
 * Runs one delivery of a clustering job's task: starts an attempt, loads the
 * dataset (every record, in manifest order) and the source fold's checkpoint,
 * fine-tunes (resuming from the job's last CLUSTER checkpoint when there is
 * one), reports progress and uploads a CLUSTER checkpoint at each refresh,
 * then uploads the CLUSTER_FINAL checkpoint and finishes the job with the
 * assignments, and acks the task. A resume checkpoint that is gone, corrupt
 * or of another job is reported (ReportBadCheckpoint with the job id) and the
 * fine-tune starts again from the coordinator's answer: an older job
 * checkpoint, or none (the source checkpoint, as a new job does).
 *
 * How it ends decides the task's fate, as for folds: done, skipped or
 * cancelled (an Ack.stop or a CANCELLED answer: stopped after the current
 * batch), ack; `signal` aborted (the worker stopping), nak at once; refused
 * as stale, left alone (the delivery belongs to the new owner); credentials
 * refused, nak and the error is returned (the worker stops); anything else,
 * FailFold with the job id and nak with backoff (term on the last delivery).
 */
export async function runClusterAttempt(deps: ClusterAttemptDeps, d: TaskDelivery, signal: AbortSignal): Promise<Error | undefined> {
  const jobId = d.task.jobId ?? '';
  const log = { job: jobId, delivery: d.delivery, worker: deps.worker };
  let attempt: AttemptRef | undefined;
  // Aborted by the worker stopping, or by this attempt's end (a cancel, a stale token): the fine-tune stops after its batch.
  const ac = new AbortController();
  const onStop = (): void => ac.abort(signal.reason);
  signal.addEventListener('abort', onStop, { once: true });
  let ended: AttemptEnded | undefined;
  // The first report or upload that failed for good: the attempt fails with it (not with the abort it caused).
  let chainError: unknown;
  let poll: ReturnType<typeof setInterval> | undefined;
  const end = (e: AttemptEnded): void => {
    ended ??= e;
    ac.abort(e);
  };
  /** A report's refusal that ends the attempt, or the error itself. */
  const classify = (err: unknown): unknown => {
    if (isCoordinatorCancel(err)) return new AttemptEnded('cancelled', `clustering job ${jobId} was cancelled`);
    if (code(err) === status.FAILED_PRECONDITION && attempt) return new AttemptEnded('stale', describeError(err));
    return err;
  };
  try {
    // Held (with the worker's heartbeat) while the coordinator is unreachable past the client's retries: a delivery handed
    // back counts towards max_deliver, so a coordinator outage would give the job up. stop() ends the wait (CancelledError).
    const wait = Math.max(deps.startRetryMs ?? 500, 1);
    const start = await retry(() => deps.cluster.startClusterAttempt({ jobId, worker: deps.worker, delivery: d.delivery }), {
      deadlineMs: Infinity,
      initialDelayMs: wait,
      maxDelayMs: Math.max(wait, 10_000),
      retryable: holdRetryable(deps.hungMs ?? DEFAULT_HUNG_MS),
      signal,
      random: deps.random,
      what: `starting an attempt at clustering job ${jobId}`,
      onRetry: (e) =>
        deps.logger.warn('the coordinator is unreachable; holding the task until it answers', {
          ...log,
          error: describeError(e.error),
          retryInMs: Math.round(e.delayMs),
          failures: e.failures,
        }),
    });
    if (!start.proceed) {
      deps.logger.info('clustering job needs no work', { ...log, reason: start.reason });
      deps.onAttempt?.('skipped');
      // A failed ack is not a failed attempt: the task comes back and is skipped again.
      await ackOrLog(d, deps.logger, log);
      return undefined;
    }
    const job = start.job;
    const a: AttemptRef = { runId: d.task.runId, fold: d.task.fold, token: start.token, jobId };
    attempt = a;
    deps.onAttempt?.('started');
    const spec = resolvedSpec(jobId, job?.spec);
    // stop() (or the attempt's end) aborts the downloads.
    const { manifest, set } = await deps.shards.allRecords(start.manifest, ac.signal);
    const source = decodeCheckpoint(await deps.store.getBytes(start.sourceCheckpoint), start.sourceCheckpoint);
    const startLog = (resume?: { key: string; iteration: number }): void =>
      deps.logger.info(resume ? 'resuming clustering job' : 'fine-tuning clustering job', {
        ...log,
        method: spec.method,
        k: spec.k,
        records: set.count,
        ...(resume ? { fromIteration: resume.iteration, checkpoint: resume.key } : {}),
      });
    const labelled = manifest.imageFolder?.labeled !== false;
    // Reports and uploads go one at a time, in order, and the fine-tune waits for each (so a stop answer is seen before
    // its next batch, and a checkpoint is stored before training goes on); a refusal ends the attempt.
    let chain: Promise<void> = Promise.resolve();
    const enqueue = (what: string, fn: () => Promise<void>): Promise<void> => {
      chain = chain.then(async () => {
        if (ended) return;
        try {
          await fn();
        } catch (err) {
          const c = classify(err);
          if (c instanceof AttemptEnded) end(c);
          else if (isAuthError(err)) throw err;
          else if (what === 'progress') deps.logger.warn('a clustering progress report failed', { ...log, error: describeError(err) });
          else throw err;
        }
      });
      // A failed upload fails the attempt once the fine-tune returns; the abort stops it early.
      chain.catch((err: unknown) => {
        chainError ??= err;
        ac.abort(new Error(`${what} failed`));
      });
      return chain.then(
        () => undefined,
        () => undefined,
      );
    };
    // The cancel poll: the last report again, on a timer, between the fine-tune's own reports (see cancelPollMs).
    let lastReport: ClusterJobProgress | undefined;
    let polling = false;
    poll = setInterval(() => {
      const again = lastReport;
      if (again === undefined || polling || ended) return;
      polling = true;
      void enqueue('progress', async () => {
        const ack = await deps.cluster.reportClusterProgress(a, lastReport ?? again);
        if (ack.stop) end(new AttemptEnded('cancelled', ack.reason || `clustering job ${jobId} was stopped`));
      }).then(
        () => (polling = false),
        () => (polling = false),
      );
    }, deps.cancelPollMs ?? 10_000);
    poll.unref();
    // Set by the fine-tune's first report or checkpoint: from then on a failure is the fine-tune's, not its resume state's.
    let begun = false;
    const fineTune = (resume: Uint8Array | undefined): ReturnType<FineTuneFn> =>
      deps.fineTune(
        { modelConfig: source.config.modelConfig, source, images: set },
        {
          ...spec,
          ...(labelled ? { labels: set.labels } : {}),
          signal: ac.signal,
          ...(resume ? { resume } : {}),
          onProgress: (p) => {
            begun = true;
            d.working();
            deps.onProgress?.(jobId, spec.method, p);
            const progress: ClusterJobProgress = (lastReport = {
              iteration: p.iteration,
              maxIterations: p.maxIterations,
              loss: p.loss,
              clusterLoss: p.clusterLoss,
              reconstructionLoss: p.reconstructionLoss,
              changed: p.changed,
              ...(p.acc !== undefined ? { acc: p.acc } : {}),
              ...(p.nmi !== undefined ? { nmi: p.nmi } : {}),
              ...(p.ari !== undefined ? { ari: p.ari } : {}),
              seconds: p.seconds,
              updatedAtMs: 0,
            });
            return enqueue('progress', async () => {
              const ack = await deps.cluster.reportClusterProgress(a, progress);
              if (ack.stop) end(new AttemptEnded('cancelled', ack.reason || `clustering job ${jobId} was stopped`));
            });
          },
          onCheckpoint: (state, iteration) => {
            begun = true;
            d.working();
            return enqueue('checkpoint upload', async () => {
              await deps.coordinator.uploadCheckpoint(a, iteration, CheckpointKind.CHECKPOINT_KIND_CLUSTER, state);
            });
          },
        },
      );
    // A resume state that is gone, corrupt or of another job (its failures come before the first report) is reported;
    // the coordinator answers an older one or a fresh start (from the source checkpoint), as for a fold.
    let resumeIteration = job?.lastCheckpointIteration ?? 0;
    const resumed = await resumeWithFallback(start.resumeCheckpoint, {
      load: async (key) => {
        const bytes = await deps.store.getBytes(key, { signal: ac.signal });
        startLog({ key, iteration: resumeIteration });
        return fineTune(bytes);
      },
      isBad: (err) => !begun && isBadCheckpoint(err),
      report: (bad, reason) => deps.coordinator.reportBadCheckpoint({ attempt: a, checkpoint: bad, reason }),
      onFallback: (bad, err, next) => {
        resumeIteration = next.resumeEpoch;
        deps.logger.warn('the resume checkpoint of a clustering job cannot be used; falling back', {
          ...log,
          checkpoint: bad,
          error: describeError(err),
          fallback: next.resumeCheckpoint || 'a fresh start from the source checkpoint',
          fromIteration: next.resumeCheckpoint ? next.resumeEpoch : 0,
        });
      },
      onRetryMissing: (key, err, tries) =>
        deps.logger.warn('the resume checkpoint of a clustering job was not found, but the coordinator has it; downloading it again', {
          ...log,
          checkpoint: key,
          error: describeError(err),
          tries,
        }),
      sleep: (ms) =>
        deps.sleep ? deps.sleep(ms, ac.signal) : abortableSleep(ms, ac.signal, 'waiting to download the resume checkpoint of a clustering job again'),
    });
    const result =
      resumed ??
      (await (async () => {
        startLog();
        return fineTune(undefined);
      })());
    // The poll is for the gaps between refreshes: none is left once the fine-tune returned.
    clearInterval(poll);
    await chain;
    if (ended) throw ended;
    if (signal.aborted) throw new CancelledError('clustering job interrupted: the worker is stopping');
    d.working();
    try {
      await deps.coordinator.uploadCheckpoint(a, result.iterations, CheckpointKind.CHECKPOINT_KIND_CLUSTER_FINAL, encodeCheckpoint(result.state));
      await deps.cluster.finishClusterJob({
        attempt: a,
        result: {
          encoder: '',
          assignments: '',
          iterations: result.iterations,
          stopReason: result.stopReason,
          artifacts: {},
          ...(result.initial ? { initialAcc: result.initial.acc, initialNmi: result.initial.nmi } : {}),
          ...(result.final ? { acc: result.final.acc, nmi: result.final.nmi, ari: result.final.ari } : {}),
        },
        assignments: Array.from(result.assignments),
        confidence: Array.from(result.confidence),
      });
    } catch (err) {
      throw classify(err);
    }
    // The result is recorded: a failed ack must not turn it into a failed attempt (the redelivery finds the job done).
    await ackOrLog(d, deps.logger, log);
    deps.onAttempt?.('succeeded');
    deps.logger.info('clustering job done', { ...log, iterations: result.iterations, stopReason: result.stopReason, acc: result.final?.acc ?? null });
    return undefined;
  } catch (caught) {
    // The fine-tune stopped because the attempt had ended: that, not the abort, is why.
    const err = ended ?? chainError ?? caught;
    if (isAuthError(err)) {
      deps.logger.error("the coordinator refused this worker's credentials; handing the task back and stopping", { ...log, error: describeError(err) });
      d.nak(5000);
      return err as Error;
    }
    if (err instanceof AttemptEnded && err.why === 'cancelled') {
      deps.logger.info('clustering job cancelled; dropping the task', log);
      deps.onAttempt?.('cancelled');
      await ackOrLog(d, deps.logger, log);
    } else if (isCoordinatorCancel(err)) {
      deps.logger.info('clustering job cancelled; dropping the task', log);
      deps.onAttempt?.('cancelled');
      await ackOrLog(d, deps.logger, log);
    } else if (err instanceof AttemptEnded) {
      deps.logger.warn('another attempt owns this clustering job; abandoning this attempt', { ...log, error: err.message });
      deps.onAttempt?.('abandoned');
    } else if (attempt && code(err) === status.FAILED_PRECONDITION) {
      deps.logger.warn('another attempt owns this clustering job; abandoning this attempt', { ...log, error: describeError(err) });
      deps.onAttempt?.('abandoned');
    } else if (signal.aborted || err instanceof CancelledError) {
      deps.logger.info('clustering job interrupted; handing the task back', log);
      deps.onAttempt?.('interrupted');
      d.nak();
    } else {
      // A failure another delivery would only repeat is final at once.
      const final = d.delivery >= d.maxDeliver || isPermanentFailure(err);
      deps.logger.error('clustering attempt failed', { ...log, error: describeError(err), final });
      deps.onAttempt?.('failed');
      const recorded =
        attempt !== undefined &&
        (await deps.coordinator.failFold({ attempt, error: describeError(err), final }).then(
          () => true,
          (e: unknown) => {
            deps.logger.warn('reporting the failed clustering attempt failed', { ...log, error: describeError(e) });
            return false;
          },
        ));
      if (final && recorded) d.term(describeError(err));
      else d.nak(backoffDelay(d.delivery, { initialDelayMs: 2000, maxDelayMs: 30_000 }, deps.random()));
    }
    return undefined;
  } finally {
    clearInterval(poll);
    signal.removeEventListener('abort', onStop);
  }
}
