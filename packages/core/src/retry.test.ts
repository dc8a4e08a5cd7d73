import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, createBackoff, retry, type RetryEvent, type RetryOptions } from './retry.js';
import { CancelledError } from './errors.js';

/** A fake clock whose sleep advances time at once, recording each wait. */
function fakeTime(random: () => number = () => 0.5): { waits: number[]; opts: Pick<RetryOptions, 'sleep' | 'now' | 'random'> } {
  let t = 1_000_000;
  const waits: number[] = [];
  return {
    waits,
    opts: {
      now: () => t,
      random,
      sleep: (ms) => {
        waits.push(ms);
        t += ms;
        return Promise.resolve();
      },
    },
  };
}

class Transient extends Error {}

test('waits stay within the equal-jitter bounds [c/2, c] and the ceiling grows to the cap', async () => {
  for (const u of [0, 0.999_999, 0.3]) {
    const { waits, opts } = fakeTime(() => u);
    let calls = 0;
    const r = await retry(
      () => {
        calls++;
        if (calls < 8) return Promise.reject(new Transient('down'));
        return Promise.resolve('ok');
      },
      { ...opts, initialDelayMs: 100, maxDelayMs: 1000, deadlineMs: Infinity, retryable: (e) => e instanceof Transient },
    );
    assert.equal(r, 'ok');
    assert.equal(waits.length, 7);
    const ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
    waits.forEach((w, i) => {
      const c = ceilings[i] ?? NaN;
      assert.ok(w >= c / 2 && w <= c, `wait ${i + 1} = ${w} must be in [${c / 2}, ${c}]`);
    });
    for (let i = 1; i < waits.length; i++) assert.ok((waits[i] ?? 0) >= (waits[i - 1] ?? 0), `waits grow: ${waits.join(', ')}`);
  }
  assert.equal(backoffDelay(1, { initialDelayMs: 100 }, 0), 50);
  assert.equal(backoffDelay(3, { initialDelayMs: 100 }, 1), 400);
  assert.equal(backoffDelay(30, { initialDelayMs: 100, maxDelayMs: 700 }, 1), 700);
});

test('the deadline is respected: no wait is started that would end past it, and the last error is thrown', async () => {
  const { waits, opts } = fakeTime(() => 0.999);
  let calls = 0;
  const last = new Transient('still down');
  await assert.rejects(
    retry(
      () => {
        calls++;
        return Promise.reject(calls < 100 ? new Transient(`down ${calls}`) : last);
      },
      { ...opts, initialDelayMs: 100, maxDelayMs: 400, deadlineMs: 1000, retryable: () => true },
    ),
    (err: unknown) => err instanceof Transient && /^down \d+$/.test(err.message),
  );
  const total = waits.reduce((a, b) => a + b, 0);
  assert.ok(total <= 1000, `waited ${total} ms in all, deadline 1000`);
  assert.ok(waits.length >= 3, `retried until the deadline (${waits.length} waits)`);
  assert.ok(calls < 100);
});

test('a non-retryable failure is thrown at once, unchanged', async () => {
  const { waits, opts } = fakeTime();
  const fatal = new Error('bad request');
  let calls = 0;
  await assert.rejects(
    retry(
      () => {
        calls++;
        return Promise.reject(fatal);
      },
      { ...opts, retryable: (e) => e instanceof Transient },
    ),
    (err) => err === fatal,
  );
  assert.equal(calls, 1);
  assert.deepEqual(waits, []);
});

test('a server hint is honoured as the wait, beyond the backoff cap, and onRetry sees it', async () => {
  const { waits, opts } = fakeTime();
  const events: RetryEvent[] = [];
  let calls = 0;
  const r = await retry(
    (attempt) => {
      calls++;
      return attempt < 3 ? Promise.reject(new Transient('busy')) : Promise.resolve(attempt);
    },
    { ...opts, maxDelayMs: 100, retryable: () => ({ retryAfterMs: 1234 }), onRetry: (e) => events.push(e), what: 'upload' },
  );
  assert.equal(r, 3);
  assert.equal(calls, 3);
  assert.deepEqual(waits, [1234, 1234]);
  assert.deepEqual(
    events.map((e) => [e.failures, e.delayMs, e.hinted, e.what]),
    [
      [1, 1234, true, 'upload'],
      [2, 1234, true, 'upload'],
    ],
  );
});

test('maxAttempts bounds the tries', async () => {
  const { opts } = fakeTime();
  let calls = 0;
  await assert.rejects(
    retry(
      () => {
        calls++;
        return Promise.reject(new Transient('down'));
      },
      { ...opts, maxAttempts: 3, retryable: () => true },
    ),
    Transient,
  );
  assert.equal(calls, 3);
});

test('an abort stops the retries during a wait with CancelledError', async () => {
  const ac = new AbortController();
  let calls = 0;
  const p = retry(
    () => {
      calls++;
      return Promise.reject(new Transient('down'));
    },
    // The real timer-based sleep, so the abort must interrupt it: the wait is an hour.
    { initialDelayMs: 3_600_000, maxDelayMs: 3_600_000, deadlineMs: Infinity, retryable: () => true, signal: ac.signal, what: 'fetching x' },
  );
  setImmediate(() => ac.abort(new Error('stop')));
  await assert.rejects(p, (err) => err instanceof CancelledError && /fetching x was cancelled/.test(err.message));
  assert.equal(calls, 1);
});

test('an already-aborted signal runs nothing', async () => {
  const ac = new AbortController();
  ac.abort();
  let calls = 0;
  await assert.rejects(
    retry(
      () => {
        calls++;
        return Promise.resolve(1);
      },
      { signal: ac.signal },
    ),
    CancelledError,
  );
  assert.equal(calls, 0);
});

test('invalid policy numbers are refused', async () => {
  await assert.rejects(
    retry(() => Promise.resolve(1), { deadlineMs: NaN }),
    /retry\.deadlineMs/,
  );
  await assert.rejects(
    retry(() => Promise.resolve(1), { initialDelayMs: -1 }),
    /retry\.initialDelayMs/,
  );
});

test('createBackoff grows, caps and resets', () => {
  const b = createBackoff({ initialDelayMs: 100, maxDelayMs: 300, random: () => 0.999_999 });
  const a = [b.next(), b.next(), b.next(), b.next()].map(Math.round);
  assert.deepEqual(a, [100, 200, 300, 300]);
  b.reset();
  assert.equal(Math.round(b.next()), 100);
});
