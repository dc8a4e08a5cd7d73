import { z } from 'zod';

/** The NATS settings every service reads from its environment. */
export const natsEnvSchema = z.object({
  CVC_NATS_URL: z.string().min(1),
  CVC_NATS_USER: z.string().optional(),
  CVC_NATS_PASS: z.string().optional(),
  /** Redelivery after this long without an ack or heartbeat (ms). */
  CVC_ACK_WAIT_MS: z.coerce.number().int().min(1000).default(60_000),
  /** Deliveries of a task before its fold is marked failed. */
  CVC_MAX_DELIVER: z.coerce.number().int().min(1).max(100).default(5),
  /**
   * Copies JetStream keeps of the task stream, its consumer and the run KV
   * bucket (1..5, default 1). More than 1 needs a JetStream cluster with at
   * least that many servers (3 in the Kubernetes base: one server can be lost).
   */
  CVC_NATS_REPLICAS: z.coerce
    .number({ error: 'CVC_NATS_REPLICAS must be a whole number of copies, 1..5' })
    .int('CVC_NATS_REPLICAS must be a whole number of copies, 1..5')
    .min(1, 'CVC_NATS_REPLICAS must be at least 1 (one copy per stream)')
    .max(5, 'CVC_NATS_REPLICAS must be at most 5 (JetStream keeps at most 5 copies)')
    .default(1),
});

export function natsAuthFromEnv(cfg: z.output<typeof natsEnvSchema>): { user?: string; pass?: string } {
  return cfg.CVC_NATS_USER ? { user: cfg.CVC_NATS_USER, pass: cfg.CVC_NATS_PASS ?? '' } : {};
}
