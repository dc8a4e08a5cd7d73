import { z } from 'zod';
import { resolveOptions } from '@cvc/core';
import { natsEnvSchema } from '@cvc/messaging';
import { s3EnvSchema } from '@cvc/storage';
import { grpcServerSecurityEnvSchema } from '@cvc/security';

/** Coordinator settings, from the environment (Kubernetes passes Secrets as env). */
export const coordinatorConfigSchema = natsEnvSchema
  .extend(s3EnvSchema.shape)
  .extend(grpcServerSecurityEnvSchema.shape)
  .extend({
    /** gRPC listen address; port 0 picks a free one (printed on start). */
    CVC_GRPC_HOST: z.string().default('0.0.0.0'),
    CVC_GRPC_PORT: z.coerce.number().int().min(0).max(65535).default(50051),
    /** Largest checkpoint an upload may store (bytes; at least 1: 0 or less would refuse every checkpoint, failing every fold). */
    CVC_MAX_CHECKPOINT_BYTES: z.coerce
      .number()
      .int()
      .min(1)
      .default(512 * 1024 * 1024),
    /** Checkpoint uploads streamed at once; more are refused with RESOURCE_EXHAUSTED and a retry hint. */
    CVC_MAX_CONCURRENT_UPLOADS: z.coerce.number().int().min(1).max(1024).default(8),
    /** How long an upload over that limit waits for a slot before it is refused (ms; 0: refuse at once). */
    CVC_UPLOAD_QUEUE_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
    /** How long an upload may send nothing before it is dropped with DEADLINE_EXCEEDED and its slot freed (ms). */
    CVC_UPLOAD_IDLE_MS: z.coerce.number().int().min(1000).max(3_600_000).default(120_000),
    /**
     * How often the gRPC server pings each connection (ms), and how long it waits for the answer before it drops the
     * connection, ending its watch streams and uploads: a client that vanished is noticed in about their sum.
     */
    CVC_GRPC_KEEPALIVE_MS: z.coerce.number().int().min(1000).max(7_200_000).default(60_000),
    CVC_GRPC_KEEPALIVE_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(20_000),
    /** Open watch streams (run, sweep and clustering-job watches) one client (peer address and bearer token) may hold, and all clients together; more are RESOURCE_EXHAUSTED. */
    CVC_MAX_WATCHES_PER_CLIENT: z.coerce.number().int().min(1).max(1_000_000).default(64),
    CVC_MAX_WATCHES: z.coerce.number().int().min(1).max(1_000_000).default(2048),
    /** Port of /metrics, /healthz and /readyz (0: a free port, printed on start). */
    CVC_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
    CVC_METRICS_HOST: z.string().default('0.0.0.0'),
    /**
     * How long the series of an ended run, clustering job or sweep stay on /metrics, in ms (default 10 minutes;
     * at most a day): long enough to be scraped with their final values, which Prometheus keeps. 0 removes them
     * as it ends (its last values may never be scraped). Empty counts as unset (not 0).
     */
    CVC_METRICS_RETENTION_MS: z.preprocess(
      (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
      z.coerce.number().int().min(0).max(86_400_000).default(600_000),
    ),
    CVC_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
    /**
     * Test-only fault injection: hold each run's artifact export this long
     * (ms) after logging "finalising run", so an e2e test can kill the
     * coordinator inside finalisation. 0 (the default): no hold.
     */
    CVC_FAULT_HOLD_FINALIZE_MS: z.coerce.number().int().min(0).max(3_600_000).default(0),
  });
export type CoordinatorConfig = z.output<typeof coordinatorConfigSchema>;

export function coordinatorConfigFromEnv(env: NodeJS.ProcessEnv): CoordinatorConfig {
  return resolveOptions(coordinatorConfigSchema, env, 'environment');
}
