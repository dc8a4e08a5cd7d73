import type { ServiceError } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { backoffDelay, CancelledError, createBackoff, CvcError, describeError, silentLogger, type Logger } from '@cvc/core';
import { CheckpointKind, type AttemptRef } from '@cvc/proto';
import { FoldTrainer, ModelError, type EpochRecord } from '@cvc/model';
import type { ObjectStore } from '@cvc/storage';
import type { TaskDelivery, TaskQueue } from '@cvc/messaging';
import { isAuthError, type CoordinatorClient } from './client.js';
import { ShardCache } from './shards.js';

export interface WorkerDeps {
  readonly id: string;
  readonly queue: TaskQueue;
  readonly store: ObjectStore;
  readonly coordinator: CoordinatorClient;
  readonly cacheDir: string;
  readonly logger?: Logger;
  /** Observers for metrics. */
  readonly onEpoch?: (task: { runId: string; fold: number }, r: EpochRecord) => void;
  readonly onStep?: (seconds: number) => void;
  readonly onDownload?: (bytes: number, seconds: number) => void;
  readonly onAttempt?: (outcome: 'started' | 'succeeded' | 'failed' | 'nan_loss' | 'interrupted' | 'skipped') => void;
  /** Fault injection for reliability tests: attempts at this fold always fail. */
  readonly failFold?: number | undefined;
}

const isCancelled = (err: unknown): boolean => (err as ServiceError).code === status.CANCELLED;

/**
 * Pulls one fold task at a time and trains it: starts an attempt, resumes
 * from the fold's newest checkpoint when there is one, reports every epoch
 * and uploads a checkpoint after it, heartbeats while training, then uploads
 * the best checkpoint and the final metrics and acks the task.
 */
export class Worker {
  private readonly shards: ShardCache;
  private readonly logger: Logger;
  private current: AbortController | undefined;
  private stopping = false;
  private fatal: Error | undefined;

  constructor(private readonly deps: WorkerDeps) {
    this.shards = new ShardCache(deps.store, deps.cacheDir, deps.onDownload);
    this.logger = deps.logger ?? silentLogger;
  }

  /**
   * Runs until `stop()`; the fold in progress is interrupted after its
   * current batch and handed back. Rejects when the coordinator refuses this
   * worker's credentials (the task is handed back, not failed).
   */
  async run(): Promise<void> {
    // @cvc/core's backoff (jittered, 500 ms growing to 10 s), reset by every successful pull.
    const pullBackoff = createBackoff({ initialDelayMs: 500, maxDelayMs: 10_000 });
    while (!this.stopping) {
      let d: TaskDelivery | undefined;
      try {
        d = await this.deps.queue.next(2000);
        pullBackoff.reset();
      } catch (err) {
        if (this.stopping) break;
        const wait = pullBackoff.next();
        this.logger.warn('pulling a task failed; retrying', { error: describeError(err), retryInMs: Math.round(wait) });
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      if (d) await this.handle(d);
    }
    if (this.fatal) throw this.fatal;
  }

  stop(): void {
    this.stopping = true;
    this.current?.abort(new Error('worker stopping'));
  }

  private async handle(d: TaskDelivery): Promise<void> {
    const { runId, fold } = d.task;
    const log = { run: runId, fold, delivery: d.delivery, worker: this.deps.id };
    const heartbeat = setInterval(() => d.working(), Math.max(1000, Math.floor(this.deps.queue.ackWaitMs / 3)));
    const ac = new AbortController();
    this.current = ac;
    let attempt: AttemptRef | undefined;
    try {
      const start = await this.deps.coordinator.startAttempt({ runId, fold, worker: this.deps.id, delivery: d.delivery });
      if (!start.proceed) {
        this.logger.info('task needs no training', { ...log, reason: start.reason });
        this.deps.onAttempt?.('skipped');
        await d.ack();
        return;
      }
      attempt = { runId, fold, token: start.token };
      this.deps.onAttempt?.('started');
      const spec = start.spec;
      if (!spec) throw new Error('coordinator sent no run spec');
      const data = await this.shards.foldData(start.manifest, fold);
      if (this.deps.failFold === fold) throw new CvcError('FAULT_INJECTED', `fault injected (CVC_FAULT_FAIL_FOLD=${fold}): fold ${fold} always fails`);
      let trainer: FoldTrainer;
      if (start.resumeCheckpoint) {
        trainer = await FoldTrainer.resume(await this.deps.store.getBytes(start.resumeCheckpoint), start.resumeCheckpoint, spec.epochs !== undefined ? { epochs: spec.epochs } : {});
        this.logger.info('resuming fold', { ...log, fromEpoch: trainer.epochsDone, checkpoint: start.resumeCheckpoint });
      } else {
        trainer = FoldTrainer.create({
          model: spec.model as 'seed-mnist',
          ...(spec.epochs !== undefined ? { epochs: spec.epochs } : {}),
          ...(spec.batchSize !== undefined ? { batchSize: spec.batchSize } : {}),
          ...(spec.learningRate !== undefined ? { learningRate: spec.learningRate } : {}),
          upsample: spec.upsample as 'nearest',
          seed: (spec.seed ?? 42) + fold,
        });
        this.logger.info('training fold', log);
      }
      const a = attempt;
      try {
        await trainer.fit({ train: data.train, val: data.val }, {
          signal: ac.signal,
          ...(this.deps.onStep ? { onStep: this.deps.onStep } : {}),
          onEpochEnd: async (r, t) => {
            d.working();
            await this.deps.coordinator.reportEpoch(a, {
              epoch: r.epoch,
              loss: r.loss,
              valLoss: r.valLoss,
              valMse: r.valMse,
              ...(r.valCosine !== undefined ? { valCosine: r.valCosine } : {}),
              seconds: r.seconds,
              imagesPerSec: r.imagesPerSec,
            });
            this.deps.onEpoch?.({ runId, fold }, r);
            await this.deps.coordinator.uploadCheckpoint(a, r.epoch, CheckpointKind.CHECKPOINT_KIND_EPOCH, await t.checkpoint());
          },
        });
        trainer.restoreBest();
        const best = trainer.bestEpoch;
        const train = await trainer.evaluate(data.train);
        const val = await trainer.evaluate(data.val);
        const test = await trainer.evaluate(data.test);
        await this.deps.coordinator.uploadCheckpoint(a, best?.epoch ?? 0, CheckpointKind.CHECKPOINT_KIND_BEST, await trainer.checkpoint());
        await this.deps.coordinator.finishFold({ attempt: a, bestEpoch: best?.epoch ?? 0, train, val, test });
      } finally {
        trainer.dispose();
      }
      await d.ack();
      this.deps.onAttempt?.('succeeded');
      this.logger.info('fold done', log);
    } catch (err) {
      if (isAuthError(err)) {
        // Our credentials are wrong, not the fold: hand it back for a worker that is let in.
        this.logger.error('the coordinator refused this worker\'s credentials; handing the task back and stopping', { ...log, error: describeError(err) });
        d.nak(5000);
        this.fatal = err as Error;
        this.stopping = true;
      } else if (isCancelled(err)) {
        this.logger.info('run cancelled; dropping the task', log);
        await d.ack();
      } else if (err instanceof CancelledError) {
        // Stopping (SIGTERM): the last finished epoch is checkpointed; hand the task back at once.
        this.logger.info('interrupted; handing the task back', log);
        this.deps.onAttempt?.('interrupted');
        d.nak();
      } else {
        const final = d.delivery >= d.maxDeliver;
        this.logger.error('fold attempt failed', { ...log, error: describeError(err), final });
        this.deps.onAttempt?.(err instanceof ModelError && err.code === 'LOSS_NOT_FINITE' ? 'nan_loss' : 'failed');
        // The task is handed back below either way; a lost FailFold only loses the error text, so it is logged, not thrown.
        if (attempt) await this.deps.coordinator.failFold({ attempt, error: describeError(err), final }).catch((e: unknown) => this.logger.warn('reporting the failed attempt failed', { ...log, error: describeError(e) }));
        if (final) d.term(describeError(err));
        else d.nak(backoffDelay(d.delivery, { initialDelayMs: 2000, maxDelayMs: 30_000 }, Math.random()));
      }
    } finally {
      clearInterval(heartbeat);
      this.current = undefined;
    }
  }
}
