import { MessagingError } from '@cvc/messaging';
import type { DocStore, Versioned } from '@cvc/messaging';
import { takeFault, type FaultPlan } from './faults.js';

/** The DocStore operations a fault can be injected into. */
export type DocStoreOp = 'get' | 'create' | 'update' | 'keys' | 'watch';

/**
 * The in-memory DocStore plus hooks for tests. Values are kept as JSON text,
 * as in the KV bucket, so every read is a fresh copy and JSON's rules apply
 * (NaN becomes null, undefined fields vanish). Revisions are one counter per
 * store, like a KV bucket's stream sequence.
 */
export interface MemoryDocStore<T> extends DocStore<T> {
  /**
   * Makes the next `update` of `key` lose its compare-and-set once: between
   * its read and its write, `write` is applied to the stored value as another
   * writer's update. The update must then re-read and re-apply its function.
   */
  conflictOnce(key: string, write: (current: T) => T): void;
  /** The next `times` (default 1) calls of `op` throw `err` instead of running. */
  failNext(op: DocStoreOp, err: Error, times?: number): void;
  /** Writes `value` without compare-and-set (seeding a test); returns the revision. */
  put(key: string, value: T): number;
  /** Compare-and-set conflicts seen by `update` so far (each one retried). */
  readonly conflicts: number;
  /** Ends every live watch of `key` by itself, as a lost connection does: each watcher's `onEnd` gets `err`. */
  endWatches(key: string, err?: unknown): void;
}

const MAX_ATTEMPTS = 50;

/** Creates an in-memory DocStore with the real store's revisions, ALREADY_EXISTS, compare-and-set retry and watch. */
export function createMemoryDocStore<T>(): MemoryDocStore<T> {
  const docs = new Map<string, { json: string; revision: number }>();
  const watchers = new Map<string, Set<(value: T) => void>>();
  const enders = new Map<string, Set<(err?: unknown) => void>>();
  const interference = new Map<string, ((current: T) => T)[]>();
  const faults: FaultPlan<DocStoreOp> = new Map();
  let revision = 0;
  let conflicts = 0;

  const fault = (op: DocStoreOp): void => {
    const err = takeFault(faults, op);
    if (err) throw err;
  };
  const write = (key: string, value: T): number => {
    const json = JSON.stringify(value);
    const rev = ++revision;
    docs.set(key, { json, revision: rev });
    for (const w of watchers.get(key) ?? []) queueMicrotask(() => w(JSON.parse(json) as T));
    return rev;
  };
  const read = (key: string): Versioned<T> | undefined => {
    const d = docs.get(key);
    return d ? { value: JSON.parse(d.json) as T, revision: d.revision } : undefined;
  };

  return {
    get conflicts() {
      return conflicts;
    },
    get: async (key) => {
      fault('get');
      await Promise.resolve();
      return read(key);
    },
    create: async (key, value) => {
      fault('create');
      await Promise.resolve();
      if (docs.has(key)) throw new MessagingError('ALREADY_EXISTS', `${key} already exists`);
      return write(key, value);
    },
    update: async (key, fn) => {
      fault('update');
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const cur = read(key);
        if (!cur) throw new MessagingError('NOT_FOUND', `${key} does not exist`);
        const next = fn(cur.value);
        // A turn of the event loop between read and write, as over the network, so concurrent updates really race.
        await Promise.resolve();
        const other = interference.get(key)?.shift();
        if (other) write(key, other(read(key)?.value ?? cur.value));
        if (docs.get(key)?.revision !== cur.revision) {
          conflicts += 1;
          continue;
        }
        const rev = write(key, next);
        // Like the real store: the value handed back is the function's result itself.
        return { value: next, revision: rev };
      }
      throw new MessagingError('CONFLICT', `${key}: too many concurrent updates`);
    },
    keys: async () => {
      fault('keys');
      await Promise.resolve();
      return [...docs.keys()].sort();
    },
    watch: async (key, onChange, onEnd) => {
      fault('watch');
      await Promise.resolve();
      let set = watchers.get(key);
      if (!set) watchers.set(key, (set = new Set()));
      // Like a KV watch: the current value first, then every new one.
      let live = true;
      const w = (v: T): void => {
        if (live) onChange(v);
      };
      set.add(w);
      const end = (err?: unknown): void => {
        if (!live) return;
        live = false;
        set.delete(w);
        onEnd?.(err);
      };
      const ends = enders.get(key) ?? new Set();
      enders.set(key, ends.add(end));
      const first = docs.get(key);
      if (first) queueMicrotask(() => w(JSON.parse(first.json) as T));
      return () => {
        live = false;
        set.delete(w);
        ends.delete(end);
      };
    },
    endWatches: (key, err) => {
      for (const end of [...(enders.get(key) ?? [])]) end(err);
      enders.delete(key);
    },
    conflictOnce: (key, w) => {
      const list = interference.get(key) ?? [];
      list.push(w);
      interference.set(key, list);
    },
    failNext: (op, err, times = 1) => {
      faults.set(op, [...(faults.get(op) ?? []), ...Array.from({ length: times }, () => err)]);
    },
    put: (key, value) => write(key, value),
  };
}
