import { availableParallelism, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { resolveOptions } from '@cvc/core';
import { natsEnvSchema } from '@cvc/messaging';
import { s3EnvSchema } from '@cvc/storage';
import { grpcClientSecurityEnvSchema } from '@cvc/security';

/**
 * An empty (or blank) variable counts as unset, as in `CVC_FAULT_FAIL_FOLD=` or a compose file's
 * `${VAR:-}`: a number coerced from '' would be 0, which turns fault injection on for fold 0, the
 * progress reports off or the metrics port random.
 */
const unsetIfBlank = (v: unknown): unknown => (typeof v === 'string' && v.trim() === '' ? undefined : v);

/** Worker settings, from the environment. */
export const workerConfigSchema = natsEnvSchema
  .extend(s3EnvSchema.shape)
  .extend(grpcClientSecurityEnvSchema.shape)
  .extend({
    /** host:port of the coordinator's gRPC API. */
    CVC_COORDINATOR: z.string().min(1),
    CVC_WORKER_ID: z.preprocess(unsetIfBlank, z.string().default(`${hostname()}-${process.pid}`)),
    /** Verified shards are cached here, named by their sha256. */
    CVC_CACHE_DIR: z.preprocess(unsetIfBlank, z.string().default(join(tmpdir(), 'cvc-worker-cache'))),
    /**
     * Most bytes of shards kept in CVC_CACHE_DIR (default 10 GiB; 0: no limit): beyond it the least recently
     * used shards are removed, so a worker that serves many datasets and versions for days does not fill its disk.
     */
    CVC_CACHE_MAX_BYTES: z.preprocess(
      unsetIfBlank,
      z.coerce
        .number()
        .int()
        .min(0)
        .default(10 * 2 ** 30),
    ),
    CVC_BACKEND: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
    /**
     * Threads of the wasm backend (cvc's kernel pool and XNNPACK's, on worker_threads); the native backends use
     * their own. Default: the machine's cores, as for a worker alone on its machine (`cvc local up` divides them).
     */
    CVC_WASM_THREADS: z.preprocess(
      unsetIfBlank,
      z.coerce
        .number()
        .int()
        .min(1)
        .max(64)
        .default(() => Math.min(64, availableParallelism())),
    ),
    /** The wasm backend's convolution kernels: cvc's (relaxed) SIMD ones, or tfjs-backend-wasm's XNNPACK ones. */
    CVC_WASM_CONV: z.enum(['auto', 'relaxed-simd', 'simd', 'xnnpack']).default('auto'),
    /** Port of /metrics, /healthz and /readyz (0: a free port, printed on start). */
    CVC_METRICS_PORT: z.preprocess(unsetIfBlank, z.coerce.number().int().min(0).max(65535).default(9465)),
    CVC_METRICS_HOST: z.string().default('0.0.0.0'),
    /**
     * How long the series of a task this worker finished (labels run and fold, or job) stay on /metrics, in ms
     * (default 10 minutes; at most a day): long enough to be scraped with their final values, which Prometheus
     * keeps. 0 removes them as the task ends (its last values may never be scraped).
     */
    CVC_METRICS_RETENTION_MS: z.preprocess(unsetIfBlank, z.coerce.number().int().min(0).max(86_400_000).default(600_000)),
    CVC_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
    /**
     * Milliseconds between progress reports inside an epoch (images done,
     * images/s, ETA), default 3000; 0 sends none. Each report is a write of the
     * run document, so less than 500 ms is refused.
     */
    CVC_PROGRESS_INTERVAL_MS: z.preprocess(
      unsetIfBlank,
      z.coerce
        .number()
        .int()
        .max(600_000)
        .refine((v) => v === 0 || v >= 500, 'must be 0 (no progress reports) or at least 500 ms')
        .default(3000),
    ),
    /**
     * Deadline of one try of a unary call to the coordinator, in ms (1000..600000; unset: 30 000, and 60 000 for the
     * clustering calls, whose FinishClusterJob carries one assignment per record). A try that gets no answer in time
     * is DEADLINE_EXCEEDED and retried.
     */
    CVC_COORDINATOR_CALL_TIMEOUT_MS: z.preprocess(unsetIfBlank, z.coerce.number().int().min(1000).max(600_000).optional()),
    /**
     * How long a task is held for a coordinator that takes calls but answers none (every try DEADLINE_EXCEEDED), in
     * ms (default 300 000, at least 1000): past it the attempt fails and the task is handed back (nak with backoff). A
     * coordinator that is down (UNAVAILABLE) is waited for without limit.
     */
    CVC_COORDINATOR_HUNG_MS: z.preprocess(unsetIfBlank, z.coerce.number().int().min(1000).default(300_000)),
    /**
     * Fault injection, for reliability tests only: every attempt at this fold
     * number (of any run) fails after its shards are downloaded, as a task that
     * can never succeed would.
     */
    CVC_FAULT_FAIL_FOLD: z.preprocess(unsetIfBlank, z.coerce.number().int().min(0).optional()),
  });
export type WorkerConfig = z.output<typeof workerConfigSchema>;

export function workerConfigFromEnv(env: NodeJS.ProcessEnv): WorkerConfig {
  return resolveOptions(workerConfigSchema, env, 'environment');
}
