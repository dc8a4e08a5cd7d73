import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { registerProcessMetrics } from './defaults.js';
import { retentionOf, type RetentionSettings } from './series-retention.js';

/**
 * A worker's metrics. The per-task series (labels run and fold, or job and
 * method) are set through `epoch`, `trained` and `clusterProgress`; `taskEnded` starts
 * their retention, after which they leave /metrics.
 */
export function createWorkerMetrics(worker: string, opts: RetentionSettings = {}) {
  const registry = new Registry();
  registry.setDefaultLabels({ worker });
  registerProcessMetrics(registry, 'cvc_worker_');
  const m = {
    registry,
    trainLoss: new Gauge({
      name: 'cvc_worker_train_loss',
      help: 'Training loss of the last finished epoch.',
      labelNames: ['run', 'fold'],
      registers: [registry],
    }),
    valLoss: new Gauge({
      name: 'cvc_worker_val_loss',
      help: 'Validation loss of the last finished epoch.',
      labelNames: ['run', 'fold'],
      registers: [registry],
    }),
    imagesTrained: new Counter({
      name: 'cvc_worker_images_trained_total',
      help: 'Training images processed, counted as the batches of an epoch are done (not only when it ends).',
      labelNames: ['run', 'fold'],
      registers: [registry],
    }),
    imagesPerSecond: new Gauge({
      name: 'cvc_worker_images_per_second',
      help: 'Training throughput of the last finished epoch.',
      labelNames: ['run', 'fold'],
      registers: [registry],
    }),
    stepDuration: new Histogram({
      name: 'cvc_worker_step_duration_seconds',
      help: 'Wall time of one training step (one batch).',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    epochDuration: new Histogram({
      name: 'cvc_worker_epoch_duration_seconds',
      help: 'Wall time of one training epoch.',
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600],
      registers: [registry],
    }),
    downloadBytes: new Counter({ name: 'cvc_worker_shard_download_bytes_total', help: 'Shard bytes downloaded from object storage.', registers: [registry] }),
    downloadSeconds: new Counter({ name: 'cvc_worker_shard_download_seconds_total', help: 'Time spent downloading shards.', registers: [registry] }),
    attempts: new Counter({
      name: 'cvc_worker_attempts_total',
      help: 'Fold attempts started by this worker, by outcome.',
      labelNames: ['state'],
      registers: [registry],
    }),
    clusterIteration: new Gauge({
      name: 'cvc_worker_cluster_job_iteration',
      help: 'Training batches of the clustering job this worker fine-tunes, at its latest refresh.',
      labelNames: ['job', 'method'],
      registers: [registry],
    }),
    clusterLoss: new Gauge({
      name: 'cvc_worker_cluster_job_loss',
      help: 'Mean loss of the clustering job this worker fine-tunes, since its previous refresh.',
      labelNames: ['job', 'method'],
      registers: [registry],
    }),
  };
  const retention = retentionOf(opts);
  const foldKey = (t: TaskRef): string => (t.jobId ? `job:${t.jobId}` : `fold:${t.runId}/${t.fold}`);
  return {
    ...m,
    /** The per-task series' bookkeeping (close it on shutdown). */
    retention,
    /** A fold task's finished epoch: its loss and throughput (its images are counted with `trained`). */
    epoch(task: { readonly runId: string; readonly fold: number }, r: { loss: number; valLoss: number; imagesPerSec: number }): void {
      const labels = { run: task.runId, fold: String(task.fold) };
      const key = foldKey(task);
      for (const g of [m.trainLoss, m.valLoss, m.imagesPerSecond]) retention.track(key, g, labels);
      m.trainLoss.set(labels, r.loss);
      m.valLoss.set(labels, r.valLoss);
      m.imagesPerSecond.set(labels, r.imagesPerSec);
    },
    /** Training images a fold task has done since the last call (inside an epoch too, so a rate over minutes moves during long epochs). */
    trained(task: { readonly runId: string; readonly fold: number }, images: number): void {
      const labels = { run: task.runId, fold: String(task.fold) };
      retention.track(foldKey(task), m.imagesTrained, labels);
      m.imagesTrained.inc(labels, images);
    },
    /** A clustering job's refresh. */
    clusterProgress(job: string, method: string, p: { iteration: number; loss: number }): void {
      const labels = { job, method };
      const key = foldKey({ runId: '', fold: 0, jobId: job });
      for (const g of [m.clusterIteration, m.clusterLoss]) retention.track(key, g, labels);
      m.clusterIteration.set(labels, p.iteration);
      m.clusterLoss.set(labels, p.loss);
    },
    /** The worker is done with a task (whatever the outcome): its series go after the retention. */
    taskEnded(task: TaskRef): void {
      retention.finished(foldKey(task));
    },
  };
}

/** A task of the work queue, as the worker metrics name it (a fold of a run, or a clustering job's task). */
export interface TaskRef {
  readonly runId: string;
  readonly fold: number;
  readonly jobId?: string | undefined;
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
