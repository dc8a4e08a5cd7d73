import { z } from 'zod';
import { resolveOptions } from '@cvc/core';

const int = (d: number) => z.coerce.number().int().default(d);

/** Coordinator settings, from the environment (Kubernetes passes Secrets as env). */
export const coordinatorConfigSchema = z.object({
  CVC_NATS_URL: z.string().min(1),
  CVC_NATS_USER: z.string().optional(),
  CVC_NATS_PASS: z.string().optional(),
  CVC_S3_ENDPOINT: z.string().min(1),
  CVC_S3_PORT: z.coerce.number().int().min(1).max(65535),
  CVC_S3_USE_SSL: z.enum(['true', 'false']).default('false'),
  CVC_S3_ACCESS_KEY: z.string().min(1),
  CVC_S3_SECRET_KEY: z.string().min(1),
  CVC_S3_BUCKET: z.string().default('cvc'),
  /** gRPC listen address; port 0 picks a free one (printed on start). */
  CVC_GRPC_HOST: z.string().default('0.0.0.0'),
  CVC_GRPC_PORT: int(50051),
  /** Redelivery after this long without a heartbeat (ms). */
  CVC_ACK_WAIT_MS: int(60_000),
  CVC_MAX_DELIVER: int(5),
  CVC_MAX_CHECKPOINT_BYTES: int(512 * 1024 * 1024),
  CVC_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
});
export type CoordinatorConfig = z.output<typeof coordinatorConfigSchema>;

export function coordinatorConfigFromEnv(env: NodeJS.ProcessEnv): CoordinatorConfig {
  return resolveOptions(coordinatorConfigSchema, env, 'environment');
}
