import type { ClusterJob, Run } from '@cvc/proto';
import type { ClusterJobs } from './cluster-jobs.js';
import type { Coordinator } from './coordinator.js';

/** What the start-up recovery works on, and where the documents it reads are shown (the metrics). */
export interface StartUpParts {
  readonly coordinator: Coordinator;
  readonly clusterJobs: ClusterJobs;
  /** Given every stored run (the metrics count them all by state and set the live ones' series at once). */
  readonly onRun: (run: Run) => void;
  /** Given every stored clustering job (likewise). */
  readonly onJob: (job: ClusterJob) => void;
}

/**
 * The coordinator's start-up recovery: runs a previous coordinator left
 * finalising or cancelling (or with every fold ended) are finished in the
 * background, and never-started folds and jobs are queued (`requeue`). The
 * same pass seeds the metrics: each run and job document is read once for
 * both, not once for each.
 */
export async function recoverAtStart(p: StartUpParts): Promise<void> {
  await p.coordinator.recover({ requeue: true, each: p.onRun });
  await p.clusterJobs.recover({ requeue: true, each: p.onJob });
}
