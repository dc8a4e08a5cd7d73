import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { assertReplicasPossible, ensureStreamReplicas, placingReplicas } from './replicas.js';
import { retry } from '@cvc/core';
import { isNatsUnavailable } from './availability.js';
import { MessagingError } from './errors.js';
import { isMessageTooLarge, isWrongLastSequence } from './jetstream-errors.js';

/** Room kept under the server's max_payload for the headers of a KV write (its expected revision). */
export const HEADER_ROOM = 256;

/** A value and the KV revision it was read at. */
export interface Versioned<T> {
  readonly value: T;
  readonly revision: number;
}

/**
 * JSON documents in a JetStream KV bucket with compare-and-set updates. The
 * coordinator is the only writer; `update` re-reads and retries when another
 * write got in first, so no update is lost.
 */
export interface DocStore<T> {
  get(key: string): Promise<Versioned<T> | undefined>;
  /** Creates `key`; fails with ALREADY_EXISTS when it exists, TOO_LARGE when the value is over what the server takes. */
  create(key: string, value: T): Promise<number>;
  /** Applies `fn` to the current value with compare-and-set, retrying on conflicts. Returns the new value. TOO_LARGE as `create`. */
  update(key: string, fn: (current: T) => T): Promise<Versioned<T>>;
  keys(): Promise<string[]>;
  /**
   * Calls `onChange` with each new value of `key` until the returned stop()
   * is called. `onEnd` is told when the watch ends by itself (the connection
   * closed, the watch's consumer went with a server, or a value could not be
   * read or handled): the caller decides whether to watch again.
   */
  watch(key: string, onChange: (value: T) => void, onEnd?: (err?: unknown) => void): Promise<() => void>;
}

/** Options of {@link createDocStore}. */
export interface DocStoreOptions {
  /**
   * Copies of the bucket in a JetStream cluster (1..5, default 1;
   * CVC_NATS_REPLICAS). An existing bucket with another count is updated to it.
   */
  readonly replicas?: number;
}

/** Opens (or creates) the KV bucket `bucket` of JSON documents. */
export async function createDocStore<T>(nc: NatsConnection, bucket: string, opts: DocStoreOptions = {}): Promise<DocStore<T>> {
  const replicas = opts.replicas ?? 1;
  const stream = `KV_${bucket}`;
  assertReplicasPossible(nc, stream, replicas);
  // Idempotent, so retried while JetStream cannot answer yet (a stream leader being elected in a cluster, a reconnect).
  const kv: KV = await retry(
    async () => {
      const opened = await placingReplicas(stream, replicas, () => new Kvm(nc).create(bucket, { history: 1, replicas }));
      await ensureStreamReplicas(await jetstreamManager(nc), stream, replicas);
      return opened;
    },
    { deadlineMs: 15_000, initialDelayMs: 200, maxDelayMs: 2000, retryable: isNatsUnavailable, what: `opening KV bucket ${bucket}` },
  );
  const dec = (b: Uint8Array): T => JSON.parse(new TextDecoder().decode(b)) as T;
  /** The value as the KV stores it; TOO_LARGE (never retried) when it cannot be published at all. */
  const enc = (key: string, value: T): Uint8Array => {
    const body = new TextEncoder().encode(JSON.stringify(value));
    const max = nc.info?.max_payload;
    if (max !== undefined && body.length + HEADER_ROOM > max)
      throw new MessagingError('TOO_LARGE', `${key}: a value of ${body.length} bytes is over the NATS server's max_payload of ${max} bytes`);
    return body;
  };
  const tooLarge = (key: string, body: Uint8Array, err: unknown): MessagingError =>
    new MessagingError('TOO_LARGE', `${key}: a value of ${body.length} bytes is over the bucket's largest value`, { cause: err });
  const get = async (key: string): Promise<Versioned<T> | undefined> => {
    const e = await kv.get(key);
    if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
    return { value: dec(e.value), revision: e.revision };
  };
  return {
    get,
    create: async (key, value) => {
      const body = enc(key, value);
      try {
        return await kv.create(key, body);
      } catch (err) {
        if (isMessageTooLarge(err)) throw tooLarge(key, body, err);
        // Only a lost create (the key has a revision already) means it exists; anything else is a real failure.
        if (isWrongLastSequence(err)) throw new MessagingError('ALREADY_EXISTS', `${key} already exists`, { cause: err });
        throw err;
      }
    },
    update: async (key, fn) => {
      for (let attempt = 0; attempt < 50; attempt++) {
        const cur = await get(key);
        if (!cur) throw new MessagingError('NOT_FOUND', `${key} does not exist`);
        const next = fn(cur.value);
        const body = enc(key, next);
        try {
          const revision = await kv.update(key, body, cur.revision);
          return { value: next, revision };
        } catch (err) {
          if (isMessageTooLarge(err)) throw tooLarge(key, body, err);
          // Wrong last sequence: someone else wrote; re-read and re-apply.
          if (!isWrongLastSequence(err)) throw err;
        }
      }
      throw new MessagingError('CONFLICT', `${key}: too many concurrent updates`);
    },
    keys: async () => {
      const out: string[] = [];
      for await (const k of await kv.keys()) out.push(k);
      return out.sort();
    },
    watch: async (key, onChange, onEnd) => {
      const it = await kv.watch({ key });
      let stopped = false;
      void (async () => {
        try {
          for await (const e of it) if (e.operation === 'PUT' && e.value.length > 0) onChange(dec(e.value));
          if (!stopped) onEnd?.();
        } catch (err) {
          if (!stopped) onEnd?.(err);
        }
      })();
      return () => {
        stopped = true;
        it.stop();
      };
    },
  };
}
