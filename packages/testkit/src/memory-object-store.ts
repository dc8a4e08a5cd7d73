import { createHash } from 'node:crypto';
import { CancelledError, describeError, throwIfAborted } from '@cvc/core';
import { StorageError, validateKey, type ObjectStore, type PutResult } from '@cvc/storage';
import { takeFault, type FaultPlan } from './faults.js';

/** The ObjectStore operations a fault can be injected into. */
export type ObjectStoreOp = 'ensureBucket' | 'put' | 'getBytes' | 'getStream' | 'stat' | 'list' | 'remove' | 'ping';

/** One stored object. */
export interface MemoryObject {
  readonly bytes: Uint8Array;
  readonly contentType: string;
}

/**
 * The in-memory ObjectStore plus hooks for tests. Errors are the real
 * store's: a StorageError passes through, anything else (an injected fault,
 * a failing input stream) becomes S3_ERROR naming the operation and key, a
 * missing object is NOT_FOUND, a checksum mismatch is CHECKSUM_MISMATCH and
 * stores nothing. There are no retries: an injected fault is what the real
 * store throws once its retries ran out.
 */
export interface MemoryObjectStore extends ObjectStore {
  /**
   * The next `times` (default 1) calls of `op` fail with `err` (default: a
   * connection refused), wrapped as the real store wraps it; `ping` answers
   * false instead.
   */
  failNext(op: ObjectStoreOp, err?: Error, times?: number): void;
  /** The object under `key`, or undefined. */
  object(key: string): MemoryObject | undefined;
  /** Every key, sorted. */
  keys(): string[];
  /** Completed puts so far (including overwrites). */
  readonly puts: number;
}

/** Chunk size of `getStream`, so readers see more than one chunk. */
const STREAM_CHUNK = 64 * 1024;

async function* chunksOf(data: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) {
    yield data;
    return;
  }
  for await (const c of data as AsyncIterable<Uint8Array>) yield c;
}

async function* toAsync(it: Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for (const c of it) yield await Promise.resolve(c);
}

/** Creates an empty in-memory ObjectStore for `bucket` (default cvc). */
export function createMemoryObjectStore(bucket = 'cvc'): MemoryObjectStore {
  const objects = new Map<string, MemoryObject>();
  const faults: FaultPlan<ObjectStoreOp> = new Map();
  let puts = 0;

  const wrap = async <T>(op: ObjectStoreOp, what: string, key: string | undefined, fn: () => Promise<T>): Promise<T> => {
    try {
      const err = takeFault(faults, op);
      if (err) throw err;
      return await fn();
    } catch (err) {
      if (err instanceof StorageError || err instanceof CancelledError) throw err;
      throw new StorageError('S3_ERROR', `${what} failed: ${describeError(err)}`, key, { cause: err });
    }
  };
  const existing = (key: string, what: string): MemoryObject => {
    const o = objects.get(validateKey(key));
    if (!o) throw new StorageError('NOT_FOUND', `${what}: no such object`, key);
    return o;
  };

  return {
    bucket,
    get puts() {
      return puts;
    },
    ensureBucket: () => wrap('ensureBucket', 'create bucket', bucket, () => Promise.resolve()),
    put: (key, data, opts = {}) =>
      wrap('put', 'put', key, async (): Promise<PutResult> => {
        validateKey(key);
        const hash = createHash('sha256');
        const parts: Uint8Array[] = [];
        let total = 0;
        for await (const c of chunksOf(data)) {
          hash.update(c);
          parts.push(Uint8Array.from(c));
          total += c.length;
        }
        const sha256 = hash.digest('hex');
        const expected = typeof opts.expectSha256 === 'function' ? opts.expectSha256() : opts.expectSha256;
        if (opts.expectSha256 !== undefined && expected !== sha256) {
          throw new StorageError('CHECKSUM_MISMATCH', `data has sha256 ${sha256}, expected ${expected ?? '(none sent)'}; nothing was stored`, key);
        }
        objects.set(key, { bytes: new Uint8Array(Buffer.concat(parts, total)), contentType: opts.contentType ?? 'application/octet-stream' });
        puts += 1;
        return { key, bytes: total, sha256 };
      }),
    getBytes: (key, opts = {}) =>
      wrap('getBytes', 'get', key, () => {
        // As the real store: an aborted signal rejects with CancelledError.
        throwIfAborted(opts.signal, `reading ${key}`);
        return Promise.resolve(Uint8Array.from(existing(key, 'get').bytes));
      }),
    getStream: (key) =>
      wrap('getStream', 'get', key, () => {
        const bytes = Uint8Array.from(existing(key, 'get').bytes);
        function* stream(): Generator<Uint8Array> {
          for (let i = 0; i < bytes.length; i += STREAM_CHUNK) yield bytes.subarray(i, i + STREAM_CHUNK);
        }
        return Promise.resolve(toAsync(stream()));
      }),
    stat: (key) =>
      wrap('stat', 'stat', key, () => {
        const o = objects.get(validateKey(key));
        return Promise.resolve(o ? { size: o.bytes.length } : undefined);
      }),
    list: (prefix) => wrap('list', 'list', prefix, () => Promise.resolve([...objects.keys()].filter((k) => k.startsWith(prefix)).sort())),
    remove: (key) =>
      wrap('remove', 'remove', key, () => {
        // S3 answers a delete of a missing object with success.
        objects.delete(validateKey(key));
        return Promise.resolve();
      }),
    ping: () => Promise.resolve(takeFault(faults, 'ping') === undefined),
    failNext: (op, err, times = 1) => {
      const e = err ?? Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9000'), { code: 'ECONNREFUSED' });
      faults.set(op, [...(faults.get(op) ?? []), ...Array.from({ length: times }, () => e)]);
    },
    object: (key) => {
      const o = objects.get(key);
      return o ? { bytes: Uint8Array.from(o.bytes), contentType: o.contentType } : undefined;
    },
    keys: () => [...objects.keys()].sort(),
  };
}
