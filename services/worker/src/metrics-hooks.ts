import type { WorkerMetrics } from '@cvc/metrics';
import type { WorkerDeps } from './worker.js';

/**
 * The Worker's observers that feed its metrics: per-epoch loss and throughput
 * and clustering refreshes (per task), step and download times, attempt
 * outcomes; a task's end starts the retention of its series.
 */
export function workerMetricsHooks(
  metrics: WorkerMetrics,
): Required<Pick<WorkerDeps, 'onEpoch' | 'onImages' | 'onStep' | 'onDownload' | 'onAttempt' | 'onClusterProgress' | 'onTaskEnd'>> {
  return {
    onEpoch: (task, r) => {
      metrics.epoch(task, { loss: r.loss, valLoss: r.valLoss, imagesPerSec: r.imagesPerSec });
      metrics.epochDuration.observe(r.seconds);
    },
    onImages: (task, images) => metrics.trained(task, images),
    onStep: (s) => metrics.stepDuration.observe(s),
    onDownload: (bytes, seconds) => {
      metrics.downloadBytes.inc(bytes);
      metrics.downloadSeconds.inc(seconds);
    },
    onAttempt: (state) => metrics.attempts.inc({ state }),
    onClusterProgress: (job, method, p) => metrics.clusterProgress(job, method, p),
    onTaskEnd: (task) => metrics.taskEnded(task),
  };
}
