export { startMetricsServer, type MetricsServer } from './http.js';
export { createCoordinatorMetrics, type CoordinatorMetrics } from './coordinator-metrics.js';
export { createWorkerMetrics, type WorkerMetrics } from './worker-metrics.js';
export { createSweepMetrics, type SweepMetrics, type SweepMetricsView } from './sweep-metrics.js';
export { createClusterJobMetrics, type ClusterJobMetrics, type ClusterJobView } from './cluster-job-metrics.js';
