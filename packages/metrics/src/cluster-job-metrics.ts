import { Counter, Gauge, type Registry } from 'prom-client';

/** What the coordinator knows of one clustering job, for its metrics. */
export interface ClusterJobView {
  readonly id: string;
  /** Lowercase state: pending, running, finalizing, succeeded, failed, cancelled. */
  readonly state: string;
  readonly method: string;
  /** The latest refresh (absent before the first report). */
  readonly latest?: { readonly iteration: number; readonly loss: number; readonly changed: number; readonly acc?: number | undefined };
}

/**
 * Clustering-job metrics, registered in the coordinator's registry: jobs by
 * state and, per job (labels job, method), the latest refresh's iteration,
 * loss, share of assignments changed and accuracy (when the dataset is
 * labelled). `update` replaces the state counts from the latest view of every job.
 */
export function createClusterJobMetrics(registry: Registry) {
  const jobs = new Gauge({ name: 'cvc_cluster_jobs', help: 'Clustering jobs by state.', labelNames: ['state'], registers: [registry] });
  const iteration = new Gauge({
    name: 'cvc_cluster_job_iteration',
    help: 'Training batches a clustering job has done (its latest refresh).',
    labelNames: ['job', 'method'],
    registers: [registry],
  });
  const loss = new Gauge({
    name: 'cvc_cluster_job_loss',
    help: 'Mean loss of a clustering job since its previous refresh.',
    labelNames: ['job', 'method'],
    registers: [registry],
  });
  const changed = new Gauge({
    name: 'cvc_cluster_job_changed_ratio',
    help: 'Share of assignments that changed at the latest refresh of a clustering job.',
    labelNames: ['job', 'method'],
    registers: [registry],
  });
  const acc = new Gauge({
    name: 'cvc_cluster_job_accuracy',
    help: 'Clustering accuracy against the labels at the latest refresh of a job (labelled datasets only).',
    labelNames: ['job', 'method'],
    registers: [registry],
  });
  const ended = new Counter({
    name: 'cvc_cluster_jobs_ended_total',
    help: 'Clustering jobs that ended, by final state.',
    labelNames: ['state'],
    registers: [registry],
  });
  const latest = new Map<string, ClusterJobView>();
  const FINAL = new Set(['succeeded', 'failed', 'cancelled']);
  return {
    jobs,
    iteration,
    loss,
    changed,
    acc,
    ended,
    /** Records a job's new view; recounts the states. */
    update(view: ClusterJobView): void {
      const before = latest.get(view.id);
      latest.set(view.id, view);
      if (FINAL.has(view.state) && before !== undefined && before.state !== view.state) ended.inc({ state: view.state });
      jobs.reset();
      for (const v of latest.values()) jobs.inc({ state: v.state });
      const labels = { job: view.id, method: view.method };
      if (view.latest) {
        iteration.set(labels, view.latest.iteration);
        loss.set(labels, view.latest.loss);
        changed.set(labels, view.latest.changed);
        if (view.latest.acc !== undefined) acc.set(labels, view.latest.acc);
      }
    },
  };
}

export type ClusterJobMetrics = ReturnType<typeof createClusterJobMetrics>;
