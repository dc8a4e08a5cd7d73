export { Worker, type WorkerDeps } from './worker.js';
export { CoordinatorClient } from './client.js';
export { ShardCache } from './shards.js';
export { workerConfigFromEnv, type WorkerConfig } from './config.js';
export { main } from './main.js';
export { coordinatorRetryable, RETRYABLE_CODES, isAuthError, type CoordinatorRetryOptions } from './client.js';
export { WorkerError, type WorkerErrorCode } from './errors.js';
