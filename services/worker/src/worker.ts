import type { ServiceError } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { backoffDelay, CancelledError, createBackoff, describeError, retry, silentLogger, type Logger } from '@cvc/core';
import { CheckpointKind, type Ack, type AttemptRef, type StartAttemptResponse } from '@cvc/proto';
import { ModelError, type BatchProgress, type EpochRecord, type ModelConfigInput } from '@cvc/model';
import type { ObjectStore } from '@cvc/storage';
import type { TaskDelivery, TaskQueue } from '@cvc/messaging';
import { ackOrLog } from './ack.js';
import { isAuthError, isCoordinatorCancel } from './client.js';
import { abortableSleep, DEFAULT_HUNG_MS, holdRetryable } from './hold.js';
import type { CoordinatorApi } from './coordinator-api.js';
import { ProgressReporter } from './progress-reporter.js';
import { ShardCache } from './shards.js';
import { WorkerError } from './errors.js';
import { isPermanentFailure } from './failures.js';
import { resumeWithFallback } from './checkpoint-fallback.js';
import { foldTrainerFactory, type TrainerFactory, type WorkerTrainer } from './trainer-factory.js';
import type { ClusterCoordinatorApi } from './cluster-api.js';
import { runClusterAttempt, type ClusterAttemptDeps } from './cluster-attempt.js';
import { defaultFineTune, type FineTuneFn } from './fine-tune.js';

export interface WorkerDeps {
  readonly id: string;
  readonly queue: TaskQueue;
  readonly store: ObjectStore;
  readonly coordinator: CoordinatorApi;
  readonly cacheDir: string;
  /** Most bytes of shards kept in `cacheDir` (least recently used ones are removed beyond it; default: no limit). */
  readonly cacheMaxBytes?: number;
  readonly logger?: Logger;
  /** Makes the fold trainers (default: FoldTrainer on the initialised TensorFlow.js backend). */
  readonly trainers?: TrainerFactory;
  /** Milliseconds between progress reports inside an epoch (default 3000; 0 sends none). */
  readonly progressIntervalMs?: number;
  /** Clock in milliseconds for the progress reports (default Date.now). */
  readonly now?: () => number;
  /** Uniform [0, 1) source for the backoff jitter (default Math.random; tests pin it). */
  readonly random?: () => number;
  /** How long one pull waits for a task, in ms (default 2000); `stop()` takes effect within it. */
  readonly pollMs?: number;
  /** First wait before pulling again after a pull failed (NATS unreachable), in ms (default 500; it doubles with jitter up to 10 s while pulls keep failing). */
  readonly pullRetryMs?: number;
  /**
   * How long a task is held for a coordinator that takes calls but answers none (each try DEADLINE_EXCEEDED), in ms
   * (default DEFAULT_HUNG_MS, 5 minutes); past it the attempt fails and the task is handed back. One that is down
   * (UNAVAILABLE) is waited for without limit.
   */
  readonly coordinatorHungMs?: number;
  /** Observers for metrics. */
  readonly onEpoch?: (task: { runId: string; fold: number }, r: EpochRecord) => void;
  /** Training images a fold task has done since the last call: inside an epoch (as its batches are sampled) and at its end. */
  readonly onImages?: (task: { runId: string; fold: number }, images: number) => void;
  readonly onStep?: (seconds: number) => void;
  readonly onDownload?: (bytes: number, seconds: number) => void;
  readonly onAttempt?: (outcome: 'started' | 'succeeded' | 'failed' | 'nan_loss' | 'interrupted' | 'skipped' | 'abandoned' | 'stopped') => void;
  /** The worker is done with a delivered task, whatever the outcome (its per-task metrics can go). */
  readonly onTaskEnd?: (task: TaskDelivery['task']) => void;
  /** The coordinator's ClusterWorkerService: without it, clustering-job tasks are handed back. */
  readonly cluster?: ClusterCoordinatorApi;
  /** The clustering fine-tune (default: @cvc/model's fineTuneClustering). */
  readonly fineTune?: FineTuneFn;
  /** Told about every refresh of a clustering job (metrics). */
  readonly onClusterProgress?: ClusterAttemptDeps['onProgress'];
  /** Fault injection for reliability tests: attempts at this fold always fail. */
  readonly failFold?: number | undefined;
}

/** The reason of a report's answer that asks the attempt to stop (Ack.stop: the run was stopped early, or the fold paused at a sweep's rung). */
export function ackStopReason(res: unknown): string | undefined {
  if (typeof res !== 'object' || res === null || (res as Partial<Ack>).stop !== true) return undefined;
  return (res as Partial<Ack>).reason || 'the coordinator asked the attempt to stop';
}

/** A report of this attempt was refused because another attempt owns the fold now (or it has ended). */
const isStaleAttempt = (err: unknown): boolean => (err as ServiceError).code === status.FAILED_PRECONDITION;

/**
 * Pulls one fold task at a time and trains it: starts an attempt, resumes
 * from the fold's newest checkpoint when there is one, reports every epoch
 * and uploads a checkpoint after it, reports progress inside an epoch every
 * few seconds, heartbeats while training, then uploads the best checkpoint
 * and the final metrics and acks the task.
 *
 * How an attempt ends decides what happens to the task: done or skipped,
 * ack; run cancelled (CANCELLED), ack; `stop()` (SIGTERM), nak at once;
 * credentials refused, nak and `run()` rejects; a report refused as stale
 * (FAILED_PRECONDITION: another attempt owns the fold), neither failFold nor
 * ack/nak: the attempt is abandoned and the delivery left to the new owner;
 * any other failure, failFold and nak with backoff, or term on the last
 * delivery.
 */
export class Worker {
  private readonly shards: ShardCache;
  private readonly logger: Logger;
  private readonly trainers: TrainerFactory;
  private readonly progressIntervalMs: number;
  private readonly now: () => number;
  private readonly pollMs: number;
  private readonly pullRetryMs: number;
  private readonly hungMs: number;
  private current: AbortController | undefined;
  private stopping = false;
  /** Aborted by `stop()` only (not by a coordinator's stop answer): ends the final evaluation of a fold. */
  private readonly stopped = new AbortController();
  private fatal: Error | undefined;
  /** Ends the wait before the next pull after a failed one (set while that wait runs). */
  private wakePullWait: (() => void) | undefined;

  constructor(private readonly deps: WorkerDeps) {
    this.logger = deps.logger ?? silentLogger;
    this.shards = new ShardCache(deps.store, deps.cacheDir, deps.onDownload, {
      logger: this.logger,
      ...(deps.cacheMaxBytes !== undefined ? { maxBytes: deps.cacheMaxBytes } : {}),
    });
    this.trainers = deps.trainers ?? foldTrainerFactory;
    this.progressIntervalMs = deps.progressIntervalMs ?? 3000;
    this.now = deps.now ?? Date.now;
    this.pollMs = deps.pollMs ?? 2000;
    this.pullRetryMs = deps.pullRetryMs ?? 500;
    this.hungMs = deps.coordinatorHungMs ?? DEFAULT_HUNG_MS;
  }

  /**
   * Runs until `stop()`; the fold in progress is interrupted after its
   * current batch and handed back. Rejects when the coordinator refuses this
   * worker's credentials (the task is handed back, not failed).
   */
  async run(): Promise<void> {
    // @cvc/core's backoff (jittered, 500 ms growing to 10 s), reset by every successful pull.
    const pullBackoff = createBackoff({
      initialDelayMs: this.pullRetryMs,
      maxDelayMs: Math.max(this.pullRetryMs, 10_000),
      ...(this.deps.random ? { random: this.deps.random } : {}),
    });
    while (!this.stopping) {
      let d: TaskDelivery | undefined;
      try {
        d = await this.deps.queue.next(this.pollMs);
        pullBackoff.reset();
      } catch (err) {
        if (this.stopping) break;
        const wait = pullBackoff.next();
        this.logger.warn('pulling a task failed; retrying', { error: describeError(err), retryInMs: Math.round(wait) });
        await new Promise<void>((r) => {
          // stop() ends the wait at once: a SIGTERM while NATS is down must not wait out a 10 s backoff.
          const t = setTimeout(() => {
            this.wakePullWait = undefined;
            r();
          }, wait);
          this.wakePullWait = () => {
            clearTimeout(t);
            this.wakePullWait = undefined;
            r();
          };
        });
        continue;
      }
      if (d && this.stopping) {
        // stop() came while the pull was waiting and a task arrived after it: hand it straight back
        // instead of training a whole fold past a SIGTERM (the kill at the end of the grace period loses it).
        this.logger.info('stopping; handing back the task pulled during the stop', {
          run: d.task.runId,
          fold: d.task.fold,
          ...(d.task.jobId ? { job: d.task.jobId } : {}),
          worker: this.deps.id,
        });
        d.nak();
        break;
      }
      if (d) await this.handle(d).finally(() => this.deps.onTaskEnd?.(d.task));
    }
    if (this.fatal) throw this.fatal;
  }

  stop(): void {
    this.stopping = true;
    this.current?.abort(new Error('worker stopping'));
    this.stopped.abort(new Error('worker stopping'));
    this.wakePullWait?.();
  }

  /** A clustering job's task: cluster-attempt.ts does the work; here the heartbeat and the stop. */
  private async handleJob(d: TaskDelivery): Promise<void> {
    const cluster = this.deps.cluster;
    if (!cluster) {
      this.logger.warn('this worker takes no clustering jobs; handing the task back', { job: d.task.jobId, worker: this.deps.id });
      d.nak(30_000);
      return;
    }
    const heartbeat = setInterval(() => d.working(), Math.max(1000, Math.floor(this.deps.queue.ackWaitMs / 3)));
    const ac = new AbortController();
    this.current = ac;
    try {
      const fatal = await runClusterAttempt(
        {
          worker: this.deps.id,
          store: this.deps.store,
          shards: this.shards,
          coordinator: this.deps.coordinator,
          cluster,
          fineTune: this.deps.fineTune ?? defaultFineTune,
          logger: this.logger,
          random: this.deps.random ?? Math.random,
          startRetryMs: this.pullRetryMs,
          hungMs: this.hungMs,
          ...(this.deps.onClusterProgress ? { onProgress: this.deps.onClusterProgress } : {}),
          ...(this.deps.onAttempt ? { onAttempt: (o) => this.deps.onAttempt?.(o === 'cancelled' ? 'skipped' : o) } : {}),
        },
        d,
        ac.signal,
      );
      if (fatal) {
        this.fatal = fatal;
        this.stopping = true;
      }
    } finally {
      clearInterval(heartbeat);
      this.current = undefined;
    }
  }

  /**
   * StartAttempt, held until the coordinator answers: while it is unreachable
   * (UNAVAILABLE or DEADLINE_EXCEEDED past the client's own retries) the
   * delivery is kept, with its heartbeat, instead of handed back. Every
   * delivery counts towards max_deliver, so handing tasks back through a
   * coordinator outage of a few minutes would give every queued fold up and
   * fail it once the coordinator is back. `stop()` ends the wait
   * (CancelledError: the task is handed back).
   */
  private startAttempt(d: TaskDelivery, signal: AbortSignal, log: Record<string, unknown>): Promise<StartAttemptResponse> {
    return this.untilReachable(`starting an attempt at run ${d.task.runId} fold ${d.task.fold}`, signal, log, () =>
      this.deps.coordinator.startAttempt({ runId: d.task.runId, fold: d.task.fold, worker: this.deps.id, delivery: d.delivery }),
    );
  }

  /**
   * A report of a running attempt (an epoch's report or checkpoint, the best
   * checkpoint, FinishFold), retried past the client's budget while the
   * coordinator is unreachable: the delivery is held with its heartbeat, so
   * an outage longer than the budget no longer fails the attempt (losing the
   * epoch in progress and a delivery). A coordinator that is hung instead
   * (every try DEADLINE_EXCEEDED) holds it only `coordinatorHungMs`; then the
   * error is thrown and the attempt fails the normal way (see hold.ts). The
   * first try always runs, even after `stop()` (an epoch's checkpoint is
   * kept); an abort only ends a wait between tries (CancelledError).
   */
  private untilReachable<T>(what: string, signal: AbortSignal, log: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
    const wait = Math.max(this.pullRetryMs, 1);
    return retry(fn, {
      deadlineMs: Infinity,
      initialDelayMs: wait,
      maxDelayMs: Math.max(wait, 10_000),
      retryable: holdRetryable(this.hungMs),
      what,
      ...(this.deps.random ? { random: this.deps.random } : {}),
      sleep: (ms) => abortableSleep(ms, signal, what),
      onRetry: (e) =>
        this.logger.warn('the coordinator is unreachable; holding the task until it answers', {
          ...log,
          call: what,
          error: describeError(e.error),
          retryInMs: Math.round(e.delayMs),
          failures: e.failures,
        }),
    });
  }

  /**
   * The trainer resumed from `key` (undefined: start the fold fresh). A
   * checkpoint that cannot be used (gone from the store, corrupt, or not this
   * fold's model) is reported to the coordinator, which answers the fold's
   * newest older checkpoint, or none: tried in turn, each refusal logged at
   * warn naming the checkpoint and why; one found missing that the
   * coordinator still has is downloaded again (checkpoint-fallback.ts). Any
   * other failure (the store unreachable, say) is thrown as before.
   */
  private resume(attempt: AttemptRef, key: string, epochs: number, signal: AbortSignal, log: Record<string, unknown>): Promise<WorkerTrainer | undefined> {
    return resumeWithFallback(key, {
      load: async (k) => {
        const trainer = await this.trainers.resume(await this.deps.store.getBytes(k), k, { epochs });
        this.logger.info('resuming fold', { ...log, fromEpoch: trainer.epochsDone, checkpoint: k });
        return trainer;
      },
      report: (bad, reason) =>
        this.untilReachable('ReportBadCheckpoint', signal, log, () => this.deps.coordinator.reportBadCheckpoint({ attempt, checkpoint: bad, reason })),
      onFallback: (bad, err, next) =>
        this.logger.warn('the resume checkpoint cannot be used; falling back', {
          ...log,
          checkpoint: bad,
          error: describeError(err),
          fallback: next.resumeCheckpoint || 'a fresh start',
          fromEpoch: next.resumeCheckpoint ? next.resumeEpoch : 0,
        }),
      onRetryMissing: (k, err, tries) =>
        this.logger.warn('the resume checkpoint was not found, but the coordinator has it; downloading it again', {
          ...log,
          checkpoint: k,
          error: describeError(err),
          tries,
        }),
      sleep: (ms) => abortableSleep(ms, signal, 'waiting to download the resume checkpoint again'),
    });
  }

  private async handle(d: TaskDelivery): Promise<void> {
    if (d.task.jobId) return this.handleJob(d);
    const { runId, fold } = d.task;
    const log = { run: runId, fold, delivery: d.delivery, worker: this.deps.id };
    const heartbeat = setInterval(() => d.working(), Math.max(1000, Math.floor(this.deps.queue.ackWaitMs / 3)));
    const ac = new AbortController();
    this.current = ac;
    let attempt: AttemptRef | undefined;
    // Set when a report's answer asks the attempt to stop (its run was stopped early, or the fold paused at a sweep's rung).
    let stopReason: string | undefined;
    // Set once FinishFold recorded the fold's result.
    let finished = false;
    const stopWith = (reason: string | undefined): void => {
      if (reason === undefined || stopReason !== undefined) return;
      stopReason = reason;
      ac.abort(new Error(reason));
    };
    try {
      const start = await this.startAttempt(d, ac.signal, log);
      if (!start.proceed) {
        this.logger.info('task needs no training', { ...log, reason: start.reason });
        this.deps.onAttempt?.('skipped');
        // A failed ack is not a failed attempt: the task comes back and is skipped again.
        await ackOrLog(d, this.logger, log);
        return;
      }
      attempt = { runId, fold, token: start.token, jobId: '' };
      this.deps.onAttempt?.('started');
      const spec = start.spec;
      if (!spec) throw new WorkerError('NO_SPEC', `the coordinator sent no run spec for run ${runId}`);
      // The coordinator resolves every field at submission (one schema); a spec without them is a coordinator bug, not a default.
      const { epochs, batchSize, learningRate, seed } = spec;
      if (epochs === undefined || batchSize === undefined || learningRate === undefined || seed === undefined) {
        throw new WorkerError(
          'NO_SPEC',
          `the coordinator sent run ${runId}'s spec with unresolved fields (epochs, batch size, learning rate and seed are all required)`,
        );
      }
      // stop() aborts the downloads too (a shard of a large dataset can take long): nothing partial is cached.
      const data = await this.shards.foldData(start.manifest, fold, ac.signal);
      if (this.deps.failFold === fold) throw new WorkerError('FAULT_INJECTED', `fault injected (CVC_FAULT_FAIL_FOLD=${fold}): fold ${fold} always fails`);
      const resumed = await this.resume(attempt, start.resumeCheckpoint, epochs, ac.signal, log);
      let trainer: WorkerTrainer;
      if (resumed) trainer = resumed;
      else {
        // The coordinator sends the fully resolved network config; the trainer checks it with the same schema. Runs
        // submitted before configs existed have none: their preset and up-sampling stand for it.
        let modelConfig: unknown;
        if (spec.modelConfigJson) {
          try {
            modelConfig = JSON.parse(spec.modelConfigJson);
          } catch (err) {
            throw new WorkerError('NO_SPEC', `run ${runId}'s spec has a model config that is not JSON (${(err as Error).message})`, { cause: err });
          }
        }
        trainer = this.trainers.create({
          model: spec.model as 'seed-mnist',
          ...(modelConfig !== undefined
            ? { modelConfig: modelConfig as ModelConfigInput }
            : { upsample: (spec.upsample || undefined) as 'nearest' | undefined }),
          epochs,
          batchSize,
          learningRate,
          seed: seed + fold,
        });
        this.logger.info('training fold', log);
      }
      const a = attempt;
      const progress =
        this.progressIntervalMs > 0
          ? new ProgressReporter({
              send: (p) => this.deps.coordinator.reportProgress(a, p).then((res) => stopWith(ackStopReason(res))),
              intervalMs: this.progressIntervalMs,
              now: this.now,
              logger: this.logger,
              logFields: log,
            })
          : undefined;
      // Images counted so far in the epoch `countedEpoch` (the trainer reports images done within the epoch).
      let counted = 0;
      let countedEpoch = 0;
      const countImages = (epoch: number, images: number): void => {
        if (epoch !== countedEpoch) {
          countedEpoch = epoch;
          counted = 0;
        }
        if (images > counted) {
          this.deps.onImages?.({ runId, fold }, images - counted);
          counted = images;
        }
      };
      const onBatch =
        progress || this.deps.onImages
          ? (p: BatchProgress): void => {
              countImages(p.epoch, p.images);
              progress?.offer(p);
            }
          : undefined;
      try {
        await trainer.fit(
          { train: data.train, val: data.val },
          {
            signal: ac.signal,
            ...(this.deps.onStep ? { onStep: this.deps.onStep } : {}),
            // The trainer samples 4x as often as we send, so a report is due within a quarter interval of its time.
            ...(onBatch ? { onBatch } : {}),
            ...(progress ? { progressIntervalMs: Math.max(1, Math.floor(this.progressIntervalMs / 4)) } : {}),
            onEpochEnd: async (r) => {
              d.working();
              // The rest of the epoch's images (the trainer's last sample may have come before its last batch).
              countImages(r.epoch, data.train.count);
              progress?.epochEnded(r.seconds);
              const ack = await this.untilReachable('ReportEpoch', ac.signal, log, () =>
                this.deps.coordinator.reportEpoch(a, {
                  epoch: r.epoch,
                  loss: r.loss,
                  valLoss: r.valLoss,
                  valMse: r.valMse,
                  ...(r.valCosine !== undefined ? { valCosine: r.valCosine } : {}),
                  seconds: r.seconds,
                  imagesPerSec: r.imagesPerSec,
                }),
              );
              this.deps.onEpoch?.({ runId, fold }, r);
              // Told to stop: recorded before the upload, so that an upload refused because the paused fold was already
              // resumed elsewhere (a new attempt owns it) acknowledges this task instead of abandoning it as stale.
              stopWith(ackStopReason(ack));
              // Even when told to stop: the epoch's checkpoint is kept (a paused fold resumes from it).
              const bytes = await trainer.checkpoint();
              await this.untilReachable('UploadCheckpoint', ac.signal, log, () =>
                this.deps.coordinator.uploadCheckpoint(a, r.epoch, CheckpointKind.CHECKPOINT_KIND_EPOCH, bytes),
              );
            },
          },
        );
        if (stopReason === undefined) {
          trainer.restoreBest();
          const best = trainer.bestEpoch;
          // Only stop() ends the evaluation (CancelledError: the task is handed back); a stop answer to a progress report
          // that comes in meanwhile does not: FinishFold's answer decides (see below).
          const evalOpts = { signal: this.stopped.signal };
          const train = await trainer.evaluate(data.train, evalOpts);
          const val = await trainer.evaluate(data.val, evalOpts);
          const test = await trainer.evaluate(data.test, evalOpts);
          const bytes = await trainer.checkpoint();
          await this.untilReachable('UploadCheckpoint', ac.signal, log, () =>
            this.deps.coordinator.uploadCheckpoint(a, best?.epoch ?? 0, CheckpointKind.CHECKPOINT_KIND_BEST, bytes),
          );
          const done = await this.untilReachable('FinishFold', ac.signal, log, () =>
            this.deps.coordinator.finishFold({ attempt: a, bestEpoch: best?.epoch ?? 0, train, val, test }),
          );
          // The coordinator's answer decides the outcome, not a stop answer to a progress report that came in meanwhile:
          // OK means the result is recorded (the fold finished); stop means it was not (the run was stopped early first).
          const refused = ackStopReason(done);
          if (refused === undefined) finished = true;
          else stopWith(refused);
        }
      } finally {
        trainer.dispose();
      }
      // The fold's result is recorded: a failed ack (NATS reconnecting) must not turn it into a failed attempt. The task
      // comes back after ack_wait and StartAttempt finds the fold done.
      await ackOrLog(d, this.logger, log);
      if (!finished) {
        this.deps.onAttempt?.('stopped');
        this.logger.info('fold stopped by the coordinator; task acknowledged', { ...log, reason: stopReason });
      } else {
        this.deps.onAttempt?.('succeeded');
        this.logger.info('fold done', log);
      }
    } catch (err) {
      if (isAuthError(err)) {
        // Our credentials are wrong, not the fold: hand it back for a worker that is let in.
        this.logger.error("the coordinator refused this worker's credentials; handing the task back and stopping", { ...log, error: describeError(err) });
        d.nak(5000);
        this.fatal = err as Error;
        this.stopping = true;
      } else if (stopReason !== undefined && !this.stopping && !finished) {
        // Told to stop (stopped early, or paused at a rung): the coordinator wants nothing more of this task; no retry.
        this.logger.info('fold stopped by the coordinator; task acknowledged', { ...log, reason: stopReason, error: describeError(err) });
        this.deps.onAttempt?.('stopped');
        await ackOrLog(d, this.logger, log);
      } else if (isCoordinatorCancel(err)) {
        this.logger.info('run cancelled; dropping the task', log);
        await ackOrLog(d, this.logger, log);
      } else if (err instanceof CancelledError) {
        // Stopping (SIGTERM): the last finished epoch is checkpointed; hand the task back at once.
        this.logger.info('interrupted; handing the task back', log);
        this.deps.onAttempt?.('interrupted');
        d.nak();
      } else if (attempt && isStaleAttempt(err)) {
        // Another attempt owns the fold (this one was too slow and the task was
        // redelivered), or the fold has ended. failFold would be refused and must
        // not count against the new owner; a nak or term would redeliver or drop
        // the task the new owner is working on. Stop heartbeating and leave the
        // delivery alone: if nobody holds it, it comes back after ack_wait and
        // StartAttempt sorts it out.
        this.logger.warn('another attempt owns this fold; abandoning this attempt without failing the fold', { ...log, error: describeError(err) });
        this.deps.onAttempt?.('abandoned');
      } else {
        // A failure another delivery would only repeat is final at once.
        const final = d.delivery >= d.maxDeliver || isPermanentFailure(err);
        this.logger.error('fold attempt failed', { ...log, error: describeError(err), final });
        this.deps.onAttempt?.(err instanceof ModelError && err.code === 'LOSS_NOT_FINITE' ? 'nan_loss' : 'failed');
        // A lost FailFold is logged, not thrown. On the last delivery the task is termed only once the
        // coordinator has recorded the failure: otherwise it is nak'ed, which exhausts max_deliver, and the
        // coordinator's given-up handler marks the fold failed (a term raises no advisory: the fold would stay open).
        const recorded =
          attempt !== undefined &&
          (await this.deps.coordinator.failFold({ attempt, error: describeError(err), final }).then(
            () => true,
            (e: unknown) => {
              this.logger.warn('reporting the failed attempt failed', { ...log, error: describeError(e) });
              return false;
            },
          ));
        if (final && recorded) d.term(describeError(err));
        else d.nak(backoffDelay(d.delivery, { initialDelayMs: 2000, maxDelayMs: 30_000 }, (this.deps.random ?? Math.random)()));
      }
    } finally {
      clearInterval(heartbeat);
      this.current = undefined;
    }
  }
}
