import { createJsonLogger, describeError } from '@cvc/core';
import { connectNats, natsAuthFromEnv, createTaskQueue } from '@cvc/messaging';
import { createObjectStore, logStoreRetries, storeOptionsFromEnv } from '@cvc/storage';
import { clientSecurityFromEnv, grpcClientSetup } from '@cvc/security';
import { initBackend } from '@cvc/tfjs-runtime';
import { createWorkerMetrics, startMetricsServer } from '@cvc/metrics';
import { CoordinatorClient } from './client.js';
import { ClusterCoordinatorClient } from './cluster-client.js';
import { workerConfigFromEnv } from './config.js';
import { Worker } from './worker.js';
import { workerMetricsHooks } from './metrics-hooks.js';

/** Starts a worker process; SIGTERM hands the fold in progress back and exits. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const cfg = workerConfigFromEnv(env);
  const security = clientSecurityFromEnv(cfg);
  const secrets = [cfg.CVC_S3_SECRET_KEY, ...(cfg.CVC_NATS_PASS ? [cfg.CVC_NATS_PASS] : []), ...(security.token ? [security.token] : [])];
  const logger = createJsonLogger(cfg.CVC_LOG_LEVEL, undefined, { service: 'worker', worker: cfg.CVC_WORKER_ID }, secrets);
  if (!security.token) logger.warn('CVC_TOKEN is not set: the coordinator will refuse this worker unless it runs without authentication');
  const backend = await initBackend(cfg.CVC_BACKEND, logger, { wasmThreads: cfg.CVC_WASM_THREADS, wasmConv: cfg.CVC_WASM_CONV });
  const nc = await connectNats(cfg.CVC_NATS_URL, { name: `cvc-worker-${cfg.CVC_WORKER_ID}`, ...natsAuthFromEnv(cfg) });
  const store = createObjectStore(storeOptionsFromEnv(cfg), logStoreRetries(logger));
  // The coordinator owns the consumer's ack_wait and max_deliver: a worker takes them (and heartbeats for them) rather than overwriting them.
  const queue = await createTaskQueue(nc, { ackWaitMs: cfg.CVC_ACK_WAIT_MS, maxDeliver: cfg.CVC_MAX_DELIVER, replicas: cfg.CVC_NATS_REPLICAS, adopt: true });
  if (queue.ackWaitMs !== cfg.CVC_ACK_WAIT_MS || queue.maxDeliver !== cfg.CVC_MAX_DELIVER)
    logger.warn("the task consumer's settings differ from this worker's; the consumer's are used", {
      ackWaitMs: queue.ackWaitMs,
      maxDeliver: queue.maxDeliver,
      configuredAckWaitMs: cfg.CVC_ACK_WAIT_MS,
      configuredMaxDeliver: cfg.CVC_MAX_DELIVER,
    });
  // Both clients log their retries the same way, naming the call and the run and fold (or the job).
  const onRetry = (e: { what: string; run?: string; fold?: number; job?: string; error: unknown; delayMs: number; failures: number }): void =>
    logger.warn('coordinator call failed; retrying', {
      call: e.what,
      ...(e.run !== undefined ? { run: e.run, fold: e.fold } : {}),
      ...(e.job !== undefined ? { job: e.job } : {}),
      error: describeError(e.error),
      retryInMs: Math.round(e.delayMs),
      failures: e.failures,
    });
  const callTimeout = cfg.CVC_COORDINATOR_CALL_TIMEOUT_MS !== undefined ? { callDeadlineMs: cfg.CVC_COORDINATOR_CALL_TIMEOUT_MS } : {};
  const coordinator = new CoordinatorClient(cfg.CVC_COORDINATOR, await grpcClientSetup(security), { onRetry, ...callTimeout });
  await coordinator.verifyAccess(cfg.CVC_WORKER_ID);
  const cluster = new ClusterCoordinatorClient(cfg.CVC_COORDINATOR, await grpcClientSetup(security), { onRetry, ...callTimeout });
  const metrics = createWorkerMetrics(cfg.CVC_WORKER_ID, { retentionMs: cfg.CVC_METRICS_RETENTION_MS });
  const worker = new Worker({
    id: cfg.CVC_WORKER_ID,
    queue,
    store,
    coordinator,
    cluster,
    cacheDir: cfg.CVC_CACHE_DIR,
    ...(cfg.CVC_CACHE_MAX_BYTES > 0 ? { cacheMaxBytes: cfg.CVC_CACHE_MAX_BYTES } : {}),
    logger,
    progressIntervalMs: cfg.CVC_PROGRESS_INTERVAL_MS,
    coordinatorHungMs: cfg.CVC_COORDINATOR_HUNG_MS,
    ...workerMetricsHooks(metrics),
    failFold: cfg.CVC_FAULT_FAIL_FOLD,
  });
  if (cfg.CVC_FAULT_FAIL_FOLD !== undefined) logger.warn('fault injection on: every attempt at this fold fails', { fold: cfg.CVC_FAULT_FAIL_FOLD });
  const metricsServer = await startMetricsServer(metrics.registry, {
    host: cfg.CVC_METRICS_HOST,
    port: cfg.CVC_METRICS_PORT,
    ready: async () => !nc.isClosed() && (await store.ping()),
  });
  process.stdout.write(`CVC_METRICS_PORT=${metricsServer.port}\n`);
  logger.info('worker ready', { backend: backend.name, threads: backend.threads, conv: backend.conv, coordinator: cfg.CVC_COORDINATOR });
  const shutdown = (): void => worker.stop();
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  await worker.run();
  await metricsServer.close();
  metrics.retention.close();
  coordinator.close();
  cluster.close();
  await nc.close();
  logger.info('worker stopped');
}
