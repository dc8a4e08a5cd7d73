export { startMetricsServer, type MetricsServer } from './http.js';
export { createCoordinatorMetrics, type CoordinatorMetrics } from './coordinator-metrics.js';
export { createWorkerMetrics, type WorkerMetrics, type TaskRef } from './worker-metrics.js';
export { createSweepMetrics, type SweepMetrics, type SweepMetricsView } from './sweep-metrics.js';
export { createClusterJobMetrics, type ClusterJobMetrics, type ClusterJobView } from './cluster-job-metrics.js';
export {
  SeriesRetention,
  DEFAULT_MAX_FINISHED,
  DEFAULT_RETENTION_MS,
  type RemovableMetric,
  type RetentionClock,
  type SeriesRetentionOptions,
  type TrackedSeries,
  retentionOf,
  type RetentionSettings,
} from './series-retention.js';
