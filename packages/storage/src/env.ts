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
});

export function storeOptionsFromEnv(cfg: z.output<typeof s3EnvSchema>): StoreOptions {
  return {
    endPoint: cfg.CVC_S3_ENDPOINT,
    port: cfg.CVC_S3_PORT,
    useSSL: cfg.CVC_S3_USE_SSL === 'true',
    accessKey: cfg.CVC_S3_ACCESS_KEY,
    secretKey: cfg.CVC_S3_SECRET_KEY,
    bucket: cfg.CVC_S3_BUCKET,
  };
}
