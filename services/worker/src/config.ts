import { hostname } from 'node:os';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { z } from 'zod';
import { resolveOptions } from '@cvc/core';

const int = (d: number) => z.coerce.number().int().default(d);

/** Worker settings, from the environment. */
export const workerConfigSchema = z.object({
  CVC_NATS_URL: z.string().min(1),
  CVC_NATS_USER: z.string().optional(),
  CVC_NATS_PASS: z.string().optional(),
  CVC_S3_ENDPOINT: z.string().min(1),
  CVC_S3_PORT: z.coerce.number().int().min(1).max(65535),
  CVC_S3_USE_SSL: z.enum(['true', 'false']).default('false'),
  CVC_S3_ACCESS_KEY: z.string().min(1),
  CVC_S3_SECRET_KEY: z.string().min(1),
  CVC_S3_BUCKET: z.string().default('cvc'),
  /** host:port of the coordinator's gRPC API. */
  CVC_COORDINATOR: z.string().min(1),
  CVC_WORKER_ID: z.string().default(`${hostname()}-${process.pid}`),
  /** Verified shards are cached here, named by their sha256. */
  CVC_CACHE_DIR: z.string().default(join(tmpdir(), 'cvc-worker-cache')),
  CVC_BACKEND: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  CVC_ACK_WAIT_MS: int(60_000),
  CVC_MAX_DELIVER: int(5),
  CVC_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
});
export type WorkerConfig = z.output<typeof workerConfigSchema>;

export function workerConfigFromEnv(env: NodeJS.ProcessEnv): WorkerConfig {
  return resolveOptions(workerConfigSchema, env, 'environment');
}
