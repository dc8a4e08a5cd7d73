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
});

export function natsAuthFromEnv(cfg: z.output<typeof natsEnvSchema>): { user?: string; pass?: string } {
  return cfg.CVC_NATS_USER ? { user: cfg.CVC_NATS_USER, pass: cfg.CVC_NATS_PASS ?? '' } : {};
}
