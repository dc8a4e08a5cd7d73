import type { Logger } from '@cvc/core';
import { createDocStore, type NatsConnection, type TaskQueue } from '@cvc/messaging';
import type { ClusterJobMetrics, ClusterJobView } from '@cvc/metrics';
import type { ClusterJob } from '@cvc/proto';
import type { ObjectStore } from '@cvc/storage';
import { jobStateName, type ClusterJobDoc } from './cluster-job-doc.js';
import { ClusterJobs } from './cluster-jobs.js';
import type { Coordinator } from './coordinator.js';

/** The KV bucket of clustering-job documents. */
export const CLUSTER_JOBS_BUCKET = 'cvc_cluster_jobs';

/** What the metrics show of a job: its state, method and latest refresh. */
export function jobView(job: ClusterJob): ClusterJobView {
  const last = job.history[job.history.length - 1];
  return {
    id: job.id,
    state: jobStateName(job.state),
    method: job.spec?.method ?? '',
    ...(last ? { latest: { iteration: last.iteration, loss: last.loss, changed: last.changed, acc: last.acc } } : {}),
  };
}

/**
 * Opens the clustering jobs' KV bucket and builds the coordinator's
 * ClusterJobs over it, its metrics fed from every change (the start-up
 * recovery, recoverAtStart, seeds them with the jobs already stored).
 */
export async function createClusterJobs(o: {
  nc: NatsConnection;
  store: ObjectStore;
  queue: TaskQueue;
  logger: Logger;
  coordinator: Coordinator;
  replicas: number;
  maxCheckpointBytes: number;
  metrics: ClusterJobMetrics;
}): Promise<ClusterJobs> {
  const jobs = await createDocStore<ClusterJobDoc>(o.nc, CLUSTER_JOBS_BUCKET, { replicas: o.replicas });
  const clusterJobs = new ClusterJobs({
    store: o.store,
    queue: o.queue,
    jobs,
    getRun: (id) => o.coordinator.getRun(id),
    logger: o.logger,
    maxCheckpointBytes: o.maxCheckpointBytes,
    observer: { jobChanged: (job) => o.metrics.update(jobView(job)) },
  });
  return clusterJobs;
}
