import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { registerProcessMetrics } from './defaults.js';

/** A worker's metrics. */
export function createWorkerMetrics(worker: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ worker });
  registerProcessMetrics(registry, 'cvc_worker_');
  return {
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
      help: 'Training images processed.',
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
}
export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
