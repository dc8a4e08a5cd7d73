import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { registerProcessMetrics } from './defaults.js';
import { createSweepMetrics } from './sweep-metrics.js';
import { createClusterJobMetrics } from './cluster-job-metrics.js';
import { retentionOf, type RetentionSettings } from './series-retention.js';

/**
 * The coordinator's metrics (base units, `_total` counters, labels run/fold/method/code/state only).
 * The per-run, per-job and per-sweep series are tracked in `retention`: they
 * leave /metrics a retention period after their run, job or sweep ended.
 */
export function createCoordinatorMetrics(opts: { pendingTasks?: () => Promise<{ pending: number; inFlight: number }> } & RetentionSettings = {}) {
  const registry = new Registry();
  registerProcessMetrics(registry, 'cvc_coordinator_');
  const pending = opts.pendingTasks;
  const retention = retentionOf(opts);
  return {
    registry,
    /** The per-run, per-job and per-sweep series' bookkeeping (close it on shutdown). */
    retention,
    /** Per-sweep gauges (trials by state, best score so far, decisions). */
    sweeps: createSweepMetrics(registry, retention),
    runs: new Gauge({ name: 'cvc_runs', help: 'Runs by state.', labelNames: ['state'], registers: [registry] }),
    folds: new Gauge({ name: 'cvc_folds', help: 'Folds by state, over all runs.', labelNames: ['state'], registers: [registry] }),
    foldTrainLoss: new Gauge({
      name: 'cvc_fold_train_loss',
      help: 'Latest reported training loss of a fold.',
      labelNames: ['run', 'fold'],
      registers: [registry],
    }),
    foldValLoss: new Gauge({
      name: 'cvc_fold_val_loss',
      help: 'Latest reported validation loss of a fold.',
      labelNames: ['run', 'fold'],
      registers: [registry],
    }),
    foldEpoch: new Gauge({ name: 'cvc_fold_epochs_done', help: 'Epochs reported for a fold.', labelNames: ['run', 'fold'], registers: [registry] }),
    foldLastProgress: new Gauge({
      name: 'cvc_fold_last_progress_timestamp_seconds',
      help: 'When a running fold last started, reported an epoch or reported images done within an epoch (Unix time); only running folds have this series.',
      labelNames: ['run', 'fold'],
      registers: [registry],
    }),
    redeliveries: new Counter({ name: 'cvc_redeliveries_total', help: 'Fold attempts started from a redelivered task.', registers: [registry] }),
    foldsFailed: new Counter({ name: 'cvc_folds_failed_total', help: 'Folds marked failed (after max_deliver or a final failure).', registers: [registry] }),
    checkpointBytes: new Counter({ name: 'cvc_checkpoint_bytes_total', help: 'Checkpoint bytes stored.', registers: [registry] }),
    grpcRequests: new Counter({
      name: 'cvc_grpc_requests_total',
      help: 'gRPC calls by method and status code.',
      labelNames: ['method', 'code'],
      registers: [registry],
    }),
    grpcDuration: new Histogram({
      name: 'cvc_grpc_request_duration_seconds',
      help: 'gRPC call latency.',
      labelNames: ['method'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    pendingTasks: new Gauge({
      name: 'cvc_tasks_pending',
      help: 'Fold tasks in the work queue: waiting, or delivered and not yet acknowledged.',
      labelNames: ['state'],
      registers: [registry],
      async collect() {
        if (!pending) return;
        try {
          const d = await pending();
          this.set({ state: 'waiting' }, d.pending);
          this.set({ state: 'in_flight' }, d.inFlight);
        } catch {
          // NATS unreachable: leave the last values; /readyz reports it.
        }
      },
    }),
    /** Clustering jobs (cluster-job-metrics.ts). */
    clusterJobs: createClusterJobMetrics(registry, retention),
  };
}
export type CoordinatorMetrics = ReturnType<typeof createCoordinatorMetrics>;
