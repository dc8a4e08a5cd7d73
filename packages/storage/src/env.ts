import { z } from 'zod';
import type { StoreOptions } from './object-store.js';

/** The S3 settings every service reads from its environment (Kubernetes passes the keys from a Secret). */
export const s3EnvSchema = z.object({
  CVC_S3_ENDPOINT: z.string().min(1),
  CVC_S3_PORT: z.coerce.number().int().min(1).max(65535),
  CVC_S3_USE_SSL: z.enum(['true', 'false']).default('false'),
  CVC_S3_ACCESS_KEY: z.string().min(1),
  CVC_S3_SECRET_KEY: z.string().min(1),
  CVC_S3_BUCKET: z.string().default('cvc'),
  /**
   * A read from S3 that gets no bytes for this long (ms) is aborted and
   * retried (at least 1 000; unset: the store's default, 20 000): a server
   * that accepts the connection and then goes silent cannot hold a worker's
   * download forever.
   */
  CVC_S3_STALL_TIMEOUT_MS: z.coerce
    .number({ error: 'CVC_S3_STALL_TIMEOUT_MS must be a whole number of milliseconds' })
    .int('CVC_S3_STALL_TIMEOUT_MS must be a whole number of milliseconds')
    .min(1000, 'CVC_S3_STALL_TIMEOUT_MS must be at least 1000 ms')
    .optional(),
});

export function storeOptionsFromEnv(cfg: z.output<typeof s3EnvSchema>): StoreOptions {
  return {
    endPoint: cfg.CVC_S3_ENDPOINT,
    port: cfg.CVC_S3_PORT,
    useSSL: cfg.CVC_S3_USE_SSL === 'true',
    accessKey: cfg.CVC_S3_ACCESS_KEY,
    secretKey: cfg.CVC_S3_SECRET_KEY,
    bucket: cfg.CVC_S3_BUCKET,
    ...(cfg.CVC_S3_STALL_TIMEOUT_MS === undefined ? {} : { stallTimeoutMs: cfg.CVC_S3_STALL_TIMEOUT_MS }),
  };
}
