import { createHash } from 'node:crypto';
import { Client } from 'minio';
import { CancelledError, describeError, resolveOptions, retry as retryPolicy, type Logger } from '@cvc/core';
import { z } from 'zod';
import { StorageError, StorageStallError } from './errors.js';
import { createStallAgent, guardStalls, releaseSocketDeadline, SocketStallError } from './stall.js';
import { validateKey } from './keys.js';

export const storeOptionsSchema = z
  .object({
    /** Host name of the S3 endpoint (MinIO in production). */
    endPoint: z.string().min(1),
    port: z.number().int().min(1).max(65535),
    useSSL: z.boolean().default(false),
    accessKey: z.string().min(1),
    secretKey: z.string().min(1),
    bucket: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)')
      .default('cvc'),
    /** Multipart part size in bytes (default 8 MiB; S3's minimum is 5 MiB). */
    partSize: z
      .number()
      .int()
      .min(5 * 1024 * 1024)
      .default(8 * 1024 * 1024),
    region: z.string().default('us-east-1'),
    /** How long one S3 request is retried on connection errors and 5xx answers, in ms (default 30 000). */
    retryForMs: z.number().int().min(0).default(30_000),
    /**
     * A request (a read, a write of a part, a listing, a removal) that
     * receives no bytes for this long while it waits for them (connecting,
     * the response headers, the next piece of a read's body) is aborted and fails with a StorageStallError, retried within
     * `retryForMs` like a lost connection (ms, default 20 000: below the retry
     * budget, so a stalled read is tried again at least once).
     */
    stallTimeoutMs: z.number().int().min(1).default(20_000),
  })
  .strict();
export type StoreOptions = z.input<typeof storeOptionsSchema>;

export interface PutResult {
  readonly key: string;
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * cvc's view of object storage. Every call goes through the `minio` client,
 * so the same code runs against MinIO and any S3-compatible server.
 */
export interface ObjectStore {
  readonly bucket: string;
  /** Creates the bucket when it does not exist. */
  ensureBucket(): Promise<void>;
  /**
   * Streams `data` to `key` with bounded memory (one part at a time), hashing
   * as it goes. When `expectSha256` is given and does not match, the upload
   * is abandoned and nothing is stored under `key`.
   */
  put(
    key: string,
    data: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    /** `expectSha256` may be a function, read once the data has ended (for streams whose hash comes last). */
    opts?: { expectSha256?: string | (() => string | undefined); contentType?: string },
  ): Promise<PutResult>;
  /**
   * The whole object; a read that stalls (see `stallTimeoutMs`) or loses its connection is retried from the start.
   * When `signal` aborts, the request in flight is destroyed (or a wait between tries ends) and the call rejects
   * with CancelledError: nothing of the partial body is returned.
   */
  getBytes(key: string, opts?: { signal?: AbortSignal }): Promise<Uint8Array>;
  /**
   * The object's body as it arrives. Opening is retried; once the body flows,
   * a chunk that does not come within `stallTimeoutMs` fails the iteration
   * with a StorageStallError (time the consumer takes between chunks does not count).
   */
  getStream(key: string): Promise<AsyncIterable<Uint8Array>>;
  /** Size in bytes, or undefined when the object does not exist. */
  stat(key: string): Promise<{ size: number } | undefined>;
  list(prefix: string): Promise<string[]>;
  remove(key: string): Promise<void>;
  /** Reachability check for readiness probes. */
  ping(): Promise<boolean>;
}

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'SlowDown',
  'InternalError',
  'ServiceUnavailable',
  'RequestTimeout',
]);

/**
 * Connection failures and server-side (5xx) answers are worth retrying; a 4xx
 * is not. Recognised by the error's code (Node's socket codes, S3's error
 * codes) and HTTP status, through causes and AggregateError's parts (a
 * connect to every address of a name failed), never by message text.
 */
function isTransient(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 4) return false;
  if (err instanceof StorageStallError) return true;
  const e = err as { code?: unknown; cause?: unknown; statusCode?: unknown; errors?: unknown };
  if (typeof e.code === 'string' && TRANSIENT_CODES.has(e.code)) return true;
  if (typeof e.statusCode === 'number' && e.statusCode >= 500) return true;
  if (Array.isArray(e.errors) && e.errors.some((x) => isTransient(x, depth + 1))) return true;
  return e.cause !== undefined && e.cause !== err && isTransient(e.cause, depth + 1);
}

/** Observers of an object store (a logger, say). */
export interface StoreHooks {
  /** Called before each retry of a transient failure: the error, the wait before the next try, and how many tries failed so far. */
  onRetry?(err: unknown, delayMs: number, failures: number): void;
}

/** Hooks that log each retry as a warning, so an S3 outage shows in the service's log while it is ridden out. */
export function logStoreRetries(logger: Logger): StoreHooks {
  return {
    onRetry: (err, delayMs, failures) => logger.warn('object storage unreachable; retrying', { error: describeError(err), retryInMs: delayMs, failures }),
  };
}

/** Runs one S3 request with @cvc/core's retry policy: transient failures are retried with jittered backoff (200 ms growing to 5 s) for up to `forMs`. */
function retrying<T>(forMs: number, fn: () => Promise<T>, hooks: StoreHooks, cancel?: { signal: AbortSignal; what: string }): Promise<T> {
  return retryPolicy(fn, {
    ...(cancel ? { signal: cancel.signal, what: cancel.what } : {}),
    deadlineMs: forMs,
    initialDelayMs: 200,
    maxDelayMs: 5000,
    retryable: isTransient,
    onRetry: (e) => hooks.onRetry?.(e.error, e.delayMs, e.failures),
  });
}

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'NoSuchKey' || code === 'NotFound' || code === 'NoSuchBucket';
}

async function* chunksOf(data: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) {
    yield data;
    return;
  }
  for await (const c of data as AsyncIterable<Uint8Array>) yield c;
}

/** Creates an ObjectStore for one bucket on an S3 endpoint. */
export function createObjectStore(options: StoreOptions, hooks: StoreHooks = {}): ObjectStore {
  const o = resolveOptions(storeOptionsSchema, options, 'storage options');
  // Every request goes through sockets that fail after stallTimeoutMs without traffic: a server that accepts the
  // connection and then goes silent would otherwise hold a read, or a write (and the task or upload slot waiting on
  // it), forever. Writes send buffers already in memory (a put holds each part until it is stored), so a slow
  // producer upstream never leaves one of these sockets idle.
  const client = new Client({
    endPoint: o.endPoint,
    port: o.port,
    useSSL: o.useSSL,
    accessKey: o.accessKey,
    secretKey: o.secretKey,
    region: o.region,
    transportAgent: createStallAgent(o.useSSL, o.stallTimeoutMs),
  });
  const bucket = o.bucket;
  const retry = <T>(fn: () => Promise<T>, cancel?: { signal: AbortSignal; what: string }): Promise<T> => retrying(o.retryForMs, fn, hooks, cancel);
  const stalled = (key: string, cause?: unknown, what = 'read'): StorageStallError => new StorageStallError(bucket, key, o.stallTimeoutMs, { cause, what });
  /** One request about `key`: a socket that stalled before the answer came becomes a StorageStallError naming the key. */
  const request = async <T>(key: string, fn: () => Promise<T>, what = 'read'): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw err instanceof SocketStallError ? stalled(key, err, what) : err;
    }
  };
  /** Opens `key`'s body, guarded against stalls from the headers on; `onOpen` gets the response stream as it comes. */
  const openBody = async (key: string, onOpen?: (body: { destroy(err?: Error): unknown }) => void): Promise<AsyncGenerator<Uint8Array>> => {
    const body = await request(key, () => client.getObject(bucket, key));
    onOpen?.(body);
    releaseSocketDeadline(body);
    return guardStalls(body, o.stallTimeoutMs, () => stalled(key));
  };
  /**
   * `key`'s whole body, one try. An abort of `signal` rejects at once with CancelledError and destroys the
   * response (the `minio` client takes no signal: a response whose headers are still to come is destroyed as they come).
   */
  const readAll = (key: string, signal: AbortSignal | undefined): Promise<Uint8Array> => {
    const cancelled = (): CancelledError => new CancelledError(`reading ${key} from bucket ${bucket}`, { cause: signal?.reason });
    if (signal?.aborted === true) return Promise.reject(cancelled());
    return new Promise<Uint8Array>((resolve, reject) => {
      let response: { destroy(err?: Error): unknown } | undefined;
      const onAbort = (): void => {
        const err = cancelled();
        reject(err);
        response?.destroy(err);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      (async () => {
        const parts: Uint8Array[] = [];
        const body = await openBody(key, (r) => {
          response = r;
          if (signal?.aborted === true) r.destroy(cancelled());
        });
        for await (const c of body) parts.push(c);
        return new Uint8Array(Buffer.concat(parts));
      })().then(
        (bytes) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(bytes);
        },
        (err: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          reject(signal?.aborted === true ? cancelled() : (err as Error));
        },
      );
    });
  };
  const wrap = async <T>(what: string, key: string | undefined, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StorageError || err instanceof CancelledError) throw err;
      if (isNotFound(err)) throw new StorageError('NOT_FOUND', `${what}: no such object`, key, { cause: err });
      // Still transient when the retry deadline ran out: S3 is unreachable, not refusing.
      if (isTransient(err)) throw new StorageError('UNAVAILABLE', `${what} failed: object storage unreachable (${describeError(err)})`, key, { cause: err });
      throw new StorageError('S3_ERROR', `${what} failed: ${describeError(err)}`, key, { cause: err });
    }
  };

  return {
    bucket,
    ensureBucket: () =>
      wrap('create bucket', bucket, async () => {
        if (!(await retry(() => request(bucket, () => client.bucketExists(bucket), 'bucket check')))) {
          try {
            await retry(() => request(bucket, () => client.makeBucket(bucket, o.region), 'bucket creation'));
          } catch (err) {
            const code = (err as { code?: string }).code;
            if (code !== 'BucketAlreadyOwnedByYou' && code !== 'BucketAlreadyExists') throw err;
          }
        }
      }),

    put: (key, data, opts = {}) =>
      wrap('put', key, async () => {
        validateKey(key);
        const hash = createHash('sha256');
        const headers: Record<string, string> = { 'Content-Type': opts.contentType ?? 'application/octet-stream' };
        let pending: Uint8Array[] = [];
        let pendingBytes = 0;
        let total = 0;
        let uploadId: string | undefined;
        const parts: { part: number; etag: string }[] = [];
        const flush = async (): Promise<void> => {
          const body = Buffer.concat(pending, pendingBytes);
          pending = [];
          pendingBytes = 0;
          const id = (uploadId ??= await retry(() => request(key, () => client.initiateNewMultipartUpload(bucket, key, headers), 'write')));
          // Each part is held in memory until it is stored, so it can be sent again.
          const r = await retry(() =>
            request(
              key,
              () => client.uploadPart({ bucketName: bucket, objectName: key, uploadID: id, partNumber: parts.length + 1, headers: {} }, body),
              'write',
            ),
          );
          parts.push({ part: r.part, etag: r.etag });
        };
        try {
          for await (const c of chunksOf(data)) {
            hash.update(c);
            total += c.length;
            pending.push(c);
            pendingBytes += c.length;
            // Parts are exactly partSize except the last (S3 requires >= 5 MiB for all but the last).
            while (pendingBytes >= o.partSize) {
              const all = Buffer.concat(pending, pendingBytes);
              pending = [all.subarray(0, o.partSize)];
              pendingBytes = o.partSize;
              const rest = all.subarray(o.partSize);
              await flush();
              if (rest.length > 0) {
                pending = [rest];
                pendingBytes = rest.length;
              }
            }
          }
          const sha256 = hash.digest('hex');
          const expected = typeof opts.expectSha256 === 'function' ? opts.expectSha256() : opts.expectSha256;
          if (opts.expectSha256 !== undefined && expected !== sha256) {
            throw new StorageError('CHECKSUM_MISMATCH', `data has sha256 ${sha256}, expected ${expected ?? '(none sent)'}; nothing was stored`, key);
          }
          if (uploadId === undefined) {
            // Small object: one request (also the only path some S3 servers support without multipart listing).
            const body = Buffer.concat(pending, pendingBytes);
            await retry(() => request(key, () => client.putObject(bucket, key, body, body.length, headers), 'write'));
          } else {
            if (pendingBytes > 0) await flush();
            const id = uploadId;
            await retry(() => request(key, () => client.completeMultipartUpload(bucket, key, id, parts), 'write'));
          }
          return { key, bytes: total, sha256 };
        } catch (err) {
          // Best effort: the original error is what matters; a part left behind is reaped by the bucket's lifecycle rules.
          if (uploadId !== undefined) await client.abortMultipartUpload(bucket, key, uploadId).catch(() => undefined);
          throw err;
        }
      }),

    getBytes: (key, opts = {}) =>
      wrap('get', key, async () => {
        validateKey(key);
        // The whole read is retried: a connection lost mid-body starts over. An abort ends a try or a wait between tries.
        return retry(() => readAll(key, opts.signal), opts.signal ? { signal: opts.signal, what: `reading ${key} from bucket ${bucket}` } : undefined);
      }),

    getStream: (key) =>
      wrap('get', key, async () => {
        validateKey(key);
        // Opening is retried; a stall once the body flows fails the caller's iteration with a StorageStallError.
        return retry(() => openBody(key));
      }),

    stat: (key) =>
      wrap('stat', key, async () => {
        validateKey(key);
        try {
          const s = await retry(() => request(key, () => client.statObject(bucket, key)));
          return { size: s.size };
        } catch (err) {
          if (isNotFound(err)) return undefined;
          throw err;
        }
      }),

    list: (prefix) =>
      wrap('list', prefix, async () => {
        // A listing that stalls fails (StorageStallError naming the prefix) rather than hanging; it is not retried part way.
        return request(
          prefix,
          async () => {
            const keys: string[] = [];
            for await (const item of client.listObjectsV2(bucket, prefix, true) as AsyncIterable<{ name?: string }>) {
              if (item.name) keys.push(item.name);
            }
            return keys.sort();
          },
          'list',
        );
      }),

    remove: (key) =>
      wrap('remove', key, async () => {
        validateKey(key);
        await retry(() => request(key, () => client.removeObject(bucket, key), 'remove'));
      }),

    ping: async () => {
      try {
        await client.bucketExists(bucket);
        return true;
      } catch {
        // A readiness probe: any failure (unreachable, refused) means "not ready"; the probe's caller logs nothing else.
        return false;
      }
    },
  };
}
