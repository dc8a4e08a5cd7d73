import { Counter, Gauge, type Registry } from 'prom-client';
import type { SeriesRetention } from './series-retention.js';

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
 * A job's series are tracked in `retention` and leave /metrics a retention
 * period after the job ended; a job first seen ended (the jobs stored when the
 * coordinator starts) gets none: Prometheus has its history.
 */
export function createClusterJobMetrics(registry: Registry, retention: SeriesRetention) {
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
  /** Each job's latest state, for the counts by state: every job of the bucket, a few bytes each. */
  const states = new Map<string, string>();
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
      const before = states.get(view.id);
      states.set(view.id, view.state);
      const final = FINAL.has(view.state);
      if (final && before !== undefined && before !== view.state) ended.inc({ state: view.state });
      jobs.reset();
      for (const s of states.values()) jobs.inc({ state: s });
      const key = `job:${view.id}`;
      const show = !final || (before !== undefined && !FINAL.has(before)) || retention.has(key);
      if (show && view.latest) {
        // A view without a method (a job document with no spec) keeps the method its series have; a new
        // method replaces the series rather than start a second one.
        const had = retention.series(key)[0]?.labels['method'];
        const method = view.method || had || '';
        if (had !== undefined && had !== method) retention.remove(key);
        const labels = { job: view.id, method };
        for (const g of [iteration, loss, changed]) retention.track(key, g, labels);
        iteration.set(labels, view.latest.iteration);
        loss.set(labels, view.latest.loss);
        changed.set(labels, view.latest.changed);
        if (view.latest.acc !== undefined) {
          retention.track(key, acc, labels);
          acc.set(labels, view.latest.acc);
        }
      }
      if (final) retention.finished(key);
    },
  };
}

export type ClusterJobMetrics = ReturnType<typeof createClusterJobMetrics>;
