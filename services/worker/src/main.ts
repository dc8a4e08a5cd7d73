import { createJsonLogger } from '@cvc/core';
import { connectNats, createTaskQueue } from '@cvc/messaging';
import { createObjectStore } from '@cvc/storage';
import { initBackend } from '@cvc/tfjs-runtime';
import { CoordinatorClient } from './client.js';
import { workerConfigFromEnv } from './config.js';
import { Worker } from './worker.js';

/** Starts a worker process; SIGTERM hands the fold in progress back and exits. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const cfg = workerConfigFromEnv(env);
  const logger = createJsonLogger(cfg.CVC_LOG_LEVEL, undefined, { service: 'worker', worker: cfg.CVC_WORKER_ID });
  const backend = await initBackend(cfg.CVC_BACKEND, logger);
  const nc = await connectNats(cfg.CVC_NATS_URL, { name: `cvc-worker-${cfg.CVC_WORKER_ID}`, ...(cfg.CVC_NATS_USER ? { user: cfg.CVC_NATS_USER, pass: cfg.CVC_NATS_PASS ?? '' } : {}) });
  const store = createObjectStore({
    endPoint: cfg.CVC_S3_ENDPOINT,
    port: cfg.CVC_S3_PORT,
    useSSL: cfg.CVC_S3_USE_SSL === 'true',
    accessKey: cfg.CVC_S3_ACCESS_KEY,
    secretKey: cfg.CVC_S3_SECRET_KEY,
    bucket: cfg.CVC_S3_BUCKET,
  });
  const queue = await createTaskQueue(nc, { ackWaitMs: cfg.CVC_ACK_WAIT_MS, maxDeliver: cfg.CVC_MAX_DELIVER });
  const coordinator = new CoordinatorClient(cfg.CVC_COORDINATOR);
  const worker = new Worker({ id: cfg.CVC_WORKER_ID, queue, store, coordinator, cacheDir: cfg.CVC_CACHE_DIR, logger });
  logger.info('worker ready', { backend: backend.name, coordinator: cfg.CVC_COORDINATOR });
  const shutdown = (): void => worker.stop();
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  await worker.run();
  coordinator.close();
  await nc.close();
  logger.info('worker stopped');
}
