import { JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { MessagingError } from './errors.js';

/** JetStream API error codes that mean the copies asked for cannot be placed. */
const PLACEMENT_CODES = new Set([
  10074, // replicas > 1 not supported in non-clustered mode
  10005, // no suitable peers for placement
  10023, // insufficient resources
]);

/** Copies of a stream (or KV bucket) cannot be kept: more than the cluster's servers, or a single server. */
export class NatsReplicasError extends MessagingError {
  /** The stream (`KV_bucket` for a KV bucket). */
  readonly stream: string;
  readonly replicas: number;

  constructor(stream: string, replicas: number, detail: string, options?: { cause?: unknown }) {
    super('NATS_REPLICAS', `CVC_NATS_REPLICAS=${replicas}: stream ${stream} cannot keep ${replicas} copies: ${detail}`, options);
    this.stream = stream;
    this.replicas = replicas;
  }
}

/**
 * Fails with a {@link NatsReplicasError} when `replicas` > 1 and the server
 * `nc` is connected to is not part of a cluster (its INFO names none): a
 * single nats-server keeps one copy, so CVC_NATS_REPLICAS must be 1.
 */
export function assertReplicasPossible(nc: NatsConnection, stream: string, replicas: number): void {
  if (replicas > 1 && !nc.info?.cluster) {
    throw new NatsReplicasError(
      stream,
      replicas,
      `the NATS server ${nc.getServer()} is not clustered (a single server keeps 1 copy); set CVC_NATS_REPLICAS=1 or connect to a JetStream cluster of at least ${replicas} servers`,
    );
  }
}

/** Runs `fn` (a stream or consumer create/update) and turns JetStream's placement refusals into a {@link NatsReplicasError}. */
export async function placingReplicas<T>(stream: string, replicas: number, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof JetStreamApiError && PLACEMENT_CODES.has(err.code)) {
      throw new NatsReplicasError(
        stream,
        replicas,
        `the NATS cluster cannot place them (${err.message}); CVC_NATS_REPLICAS must not exceed the JetStream servers in the cluster, and a majority of them must be up`,
        { cause: err },
      );
    }
    throw err;
  }
}

/**
 * Makes the existing stream `stream` keep `replicas` copies: a stream created
 * with another count (CVC_NATS_REPLICAS changed) is updated in place, and
 * JetStream adds or removes the copies. Returns the count it had.
 */
export async function ensureStreamReplicas(jsm: JetStreamManager, stream: string, replicas: number): Promise<number> {
  const info = await jsm.streams.info(stream);
  const had = info.config.num_replicas;
  if (had !== replicas) await placingReplicas(stream, replicas, () => jsm.streams.update(stream, { num_replicas: replicas }));
  return had;
}
