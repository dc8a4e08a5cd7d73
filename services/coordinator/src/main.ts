import { createJsonLogger, describeError } from '@cvc/core';
import { connectNats, createDocStore, createTaskQueue } from '@cvc/messaging';
import { createObjectStore } from '@cvc/storage';
import { initBackend } from '@cvc/tfjs-runtime';
import { Coordinator } from './coordinator.js';
import { coordinatorConfigFromEnv } from './config.js';
import { bindServer, createGrpcServer } from './grpc-server.js';
import type { RunDoc } from './run-doc.js';

/** Starts the coordinator process; stops cleanly on SIGTERM/SIGINT. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const cfg = coordinatorConfigFromEnv(env);
  const logger = createJsonLogger(cfg.CVC_LOG_LEVEL, undefined, { service: 'coordinator' });
  // The encoder export builds the model: the wasm backend is enough for that.
  await initBackend('wasm');
  const nc = await connectNats(cfg.CVC_NATS_URL, { name: 'cvc-coordinator', ...(cfg.CVC_NATS_USER ? { user: cfg.CVC_NATS_USER, pass: cfg.CVC_NATS_PASS ?? '' } : {}) });
  const store = createObjectStore({
    endPoint: cfg.CVC_S3_ENDPOINT,
    port: cfg.CVC_S3_PORT,
    useSSL: cfg.CVC_S3_USE_SSL === 'true',
    accessKey: cfg.CVC_S3_ACCESS_KEY,
    secretKey: cfg.CVC_S3_SECRET_KEY,
    bucket: cfg.CVC_S3_BUCKET,
  });
  await store.ensureBucket();
  const queue = await createTaskQueue(nc, { ackWaitMs: cfg.CVC_ACK_WAIT_MS, maxDeliver: cfg.CVC_MAX_DELIVER });
  const runs = await createDocStore<RunDoc>(nc, 'cvc_runs');
  const coordinator = new Coordinator({ store, queue, runs, logger, maxCheckpointBytes: cfg.CVC_MAX_CHECKPOINT_BYTES });
  const stopGivenUp = queue.onGivenUp((task, deliveries) => coordinator.onTaskGivenUp(task, deliveries));
  const server = createGrpcServer({ coordinator, logger, healthy: async () => !nc.isClosed() && (await store.ping()) });
  const port = await bindServer(server, cfg.CVC_GRPC_HOST, cfg.CVC_GRPC_PORT);
  logger.info('coordinator listening', { grpc: `${cfg.CVC_GRPC_HOST}:${port}`, nats: cfg.CVC_NATS_URL, s3: `${cfg.CVC_S3_ENDPOINT}:${cfg.CVC_S3_PORT}` });
  // A line for parents that started us with port 0.
  process.stdout.write(`CVC_COORDINATOR_PORT=${port}\n`);
  const shutdown = (sig: string): void => {
    logger.info('shutting down', { signal: sig });
    stopGivenUp();
    server.tryShutdown(() => {
      void nc.close().finally(() => process.exit(0));
    });
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  void nc.closed().then((err) => {
    if (err) logger.error('NATS connection closed', { error: describeError(err) });
  });
}
