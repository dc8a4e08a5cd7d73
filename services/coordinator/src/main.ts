import { createJsonLogger, describeError } from '@cvc/core';
import { connectNats, createDocStore, createTaskQueue, natsAuthFromEnv } from '@cvc/messaging';
import { createObjectStore, logStoreRetries, storeOptionsFromEnv } from '@cvc/storage';
import { grpcServerSecurity } from '@cvc/security';
import { initBackend } from '@cvc/tfjs-runtime';
import { createCoordinatorMetrics, startMetricsServer } from '@cvc/metrics';
import { status as grpcStatus } from '@grpc/grpc-js';
import { Coordinator } from './coordinator.js';
import { coordinatorConfigFromEnv } from './config.js';
import { exportRunArtifacts, holdExport } from './export-artifacts.js';
import { bindServer, createGrpcServer } from './grpc-server.js';
import type { RunDoc } from './run-doc.js';
import { sweepMetricsView, type SweepDoc } from './sweep-doc.js';
import { SweepManager } from './sweeps.js';
import { createClusterJobs, jobView } from './cluster-jobs-setup.js';
import { recoverAtStart } from './start-up.js';
import { createRunMetrics } from './run-metrics.js';
import { WatchSlots } from './watch-slots.js';

/** How often the running coordinator looks for runs left finalising or cancelling with nobody finishing them (ms). */
const RECOVER_SWEEP_MS = 60_000;

/** Starts the coordinator process; stops cleanly on SIGTERM/SIGINT. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const cfg = coordinatorConfigFromEnv(env);
  const security = await grpcServerSecurity(cfg);
  const secrets = [...security.secrets, cfg.CVC_S3_SECRET_KEY, ...(cfg.CVC_NATS_PASS ? [cfg.CVC_NATS_PASS] : [])];
  const logger = createJsonLogger(cfg.CVC_LOG_LEVEL, undefined, { service: 'coordinator' }, secrets);
  if (!security.tls)
    logger.warn(
      'CVC_INSECURE=true: gRPC is plaintext' +
        (security.auth ? '' : ' and unauthenticated; anyone who can reach the port can submit runs and push checkpoints'),
    );
  // The encoder export builds the model: the wasm backend is enough for that.
  await initBackend('wasm');
  const nc = await connectNats(cfg.CVC_NATS_URL, { name: 'cvc-coordinator', ...natsAuthFromEnv(cfg) });
  const store = createObjectStore(storeOptionsFromEnv(cfg), logStoreRetries(logger));
  await store.ensureBucket();
  const queue = await createTaskQueue(nc, { ackWaitMs: cfg.CVC_ACK_WAIT_MS, maxDeliver: cfg.CVC_MAX_DELIVER, replicas: cfg.CVC_NATS_REPLICAS });
  const runs = await createDocStore<RunDoc>(nc, 'cvc_runs', { replicas: cfg.CVC_NATS_REPLICAS });
  const metrics = createCoordinatorMetrics({ pendingTasks: () => queue.depth(), retentionMs: cfg.CVC_METRICS_RETENTION_MS });
  const runMetrics = createRunMetrics(metrics);
  const coordinator = new Coordinator({
    store,
    queue,
    runs,
    logger,
    maxCheckpointBytes: cfg.CVC_MAX_CHECKPOINT_BYTES,
    // A run document must fit in one NATS message.
    ...(nc.info?.max_payload ? { maxDocBytes: nc.info.max_payload } : {}),
    exportArtifacts: cfg.CVC_FAULT_HOLD_FINALIZE_MS > 0 ? holdExport(cfg.CVC_FAULT_HOLD_FINALIZE_MS, exportRunArtifacts) : exportRunArtifacts,
    observer: {
      runChanged: (run) => runMetrics.update(run),
      redelivery: () => metrics.redeliveries.inc(),
      checkpointStored: (bytes) => metrics.checkpointBytes.inc(bytes),
      foldFailed: () => metrics.foldsFailed.inc(),
    },
  });
  // Sweeps: their documents in a bucket of their own; the manager hooks into the coordinator's reports.
  const sweeps = new SweepManager({
    coordinator,
    sweeps: await createDocStore<SweepDoc>(nc, 'cvc_sweeps', { replicas: cfg.CVC_NATS_REPLICAS }),
    logger,
    onChange: (s) => metrics.sweeps.update(sweepMetricsView(s)),
    // A sweep document must fit in one NATS message.
    ...(nc.info?.max_payload ? { maxDocBytes: nc.info.max_payload } : {}),
  });
  // Before the first worker report: pausing folds at rungs needs every sweep loaded.
  await sweeps.recover();
  const clusterJobs = await createClusterJobs({
    nc,
    store,
    queue,
    logger,
    coordinator,
    replicas: cfg.CVC_NATS_REPLICAS,
    maxCheckpointBytes: cfg.CVC_MAX_CHECKPOINT_BYTES,
    metrics: metrics.clusterJobs,
  });
  if (cfg.CVC_FAULT_HOLD_FINALIZE_MS > 0) logger.warn('fault injection on: every artifact export is held', { holdMs: cfg.CVC_FAULT_HOLD_FINALIZE_MS });
  // Runs a previous coordinator left finalising or cancelling (or with every fold ended) are finished in the
  // background, and folds of a submission cut short before their tasks were all published are queued. The same
  // read seeds the metrics: the runs and jobs stored all counted by state, the live ones' series set at once.
  await recoverAtStart({ coordinator, clusterJobs, onRun: (r) => runMetrics.update(r), onJob: (j) => metrics.clusterJobs.update(jobView(j)) });
  // And again every minute while running: a FinishFold whose KV write landed but whose answer was lost (a NATS
  // leader election) leaves a run FINALIZING with nobody to finish it until the next start otherwise.
  const sweep = setInterval(() => {
    clusterJobs.recover().catch((err: unknown) => logger.warn('clustering-job recovery sweep failed; next one in a minute', { error: describeError(err) }));
    coordinator.recover().catch((err: unknown) => logger.warn('recovery sweep failed; next one in a minute', { error: describeError(err) }));
    sweeps.recover().catch((err: unknown) => logger.warn('recovering sweeps failed; next try in a minute', { error: describeError(err) }));
  }, RECOVER_SWEEP_MS);
  sweep.unref();
  const stopGivenUp = queue.onGivenUp(
    (task, deliveries) => (task.jobId ? clusterJobs.onTaskGivenUp(task, deliveries) : coordinator.onTaskGivenUp(task, deliveries)),
    // The advisory is kept (CVC_TASKS_GIVEN_UP) and handed out again later: a failure here is retried, not lost.
    (err, task) =>
      logger.error('recording a task that exhausted its deliveries failed; it is tried again later', {
        run: task?.runId,
        fold: task?.fold,
        job: task?.jobId,
        error: describeError(err),
      }),
  );
  const ready = async (): Promise<boolean> => !nc.isClosed() && (await store.ping());
  const server = createGrpcServer({
    coordinator,
    sweeps,
    clusterJobs,
    logger,
    healthy: ready,
    auth: security.auth,
    maxConcurrentUploads: cfg.CVC_MAX_CONCURRENT_UPLOADS,
    uploadQueueMs: cfg.CVC_UPLOAD_QUEUE_MS,
    uploadIdleMs: cfg.CVC_UPLOAD_IDLE_MS,
    keepaliveMs: cfg.CVC_GRPC_KEEPALIVE_MS,
    keepaliveTimeoutMs: cfg.CVC_GRPC_KEEPALIVE_TIMEOUT_MS,
    watches: new WatchSlots(cfg.CVC_MAX_WATCHES_PER_CLIENT, cfg.CVC_MAX_WATCHES),
    observe: (method, code, seconds) => {
      metrics.grpcRequests.inc({ method, code: grpcStatus[code] ?? String(code) });
      metrics.grpcDuration.observe({ method }, seconds);
    },
  });
  const metricsServer = await startMetricsServer(metrics.registry, { host: cfg.CVC_METRICS_HOST, port: cfg.CVC_METRICS_PORT, ready });
  const port = await bindServer(server, cfg.CVC_GRPC_HOST, cfg.CVC_GRPC_PORT, security.credentials);
  logger.info('coordinator listening', {
    grpc: `${cfg.CVC_GRPC_HOST}:${port}`,
    tls: security.tls,
    mutualTls: security.mutualTls,
    auth: security.auth ? 'tokens' : 'none',
    nats: cfg.CVC_NATS_URL,
    s3: `${cfg.CVC_S3_ENDPOINT}:${cfg.CVC_S3_PORT}`,
  });
  // A line for parents that started us with port 0.
  process.stdout.write(`CVC_COORDINATOR_PORT=${port}\nCVC_METRICS_PORT=${metricsServer.port}\n`);
  const shutdown = (sig: string): void => {
    logger.info('shutting down', { signal: sig });
    stopGivenUp();
    clearInterval(sweep);
    void metricsServer.close();
    metrics.retention.close();
    // Background finalisation is stopped and awaited before NATS closes (it is idempotent: a restart redoes it).
    server.tryShutdown(() => {
      void Promise.all([sweeps.close().then(() => coordinator.close()), clusterJobs.close()])
        .finally(() => nc.close())
        .finally(() => process.exit(0));
    });
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  void nc.closed().then((err) => {
    if (err) logger.error('NATS connection closed', { error: describeError(err) });
  });
}
