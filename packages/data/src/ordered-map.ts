import { throwIfAborted } from '@cvc/core';

/**
 * Maps `items` through `fn` with at most `limit` calls in flight and yields
 * the results in input order: memory is bounded by `limit` results, however
 * many items there are. The first rejection is thrown in order (after the
 * calls already started have settled); a fired `signal` stops it between items.
 */
export async function* mapOrdered<T, R>(
  items: Iterable<T>,
  limit: number,
  fn: (item: T) => Promise<R>,
  signal?: AbortSignal,
  what = 'the work',
): AsyncGenerator<R> {
  // A limit below 1 would start nothing and yield nothing: every item silently dropped.
  if (!(Number.isInteger(limit) && limit >= 1)) throw new RangeError(`mapOrdered needs a whole-number limit >= 1, got ${limit}`);
  const it = items[Symbol.iterator]();
  const window: Promise<{ ok: true; value: R } | { ok: false; error: unknown }>[] = [];
  const start = (): boolean => {
    const n = it.next();
    if (n.done) return false;
    window.push(
      fn(n.value).then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      ),
    );
    return true;
  };
  try {
    while (window.length < limit && start());
    while (window.length > 0) {
      const r = await (window.shift() as (typeof window)[number]);
      if (!r.ok) throw r.error;
      throwIfAborted(signal, what);
      start();
      yield r.value;
    }
  } finally {
    // Let calls already running finish, so no decode outlives the caller.
    await Promise.all(window);
  }
}
