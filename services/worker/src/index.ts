export { Worker, type WorkerDeps } from './worker.js';
export { CoordinatorClient } from './client.js';
export type { CoordinatorApi } from './coordinator-api.js';
export { foldTrainerFactory, type TrainerFactory, type WorkerTrainer, type WorkerFitCallbacks } from './trainer-factory.js';
export { ProgressReporter, foldEtaSeconds, toFoldProgress, type ProgressReporterOptions } from './progress-reporter.js';
export { ShardCache } from './shards.js';
export { workerConfigFromEnv, type WorkerConfig } from './config.js';
export { main } from './main.js';
