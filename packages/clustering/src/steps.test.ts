import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CancelledError, createRng } from '@cvc/core';
import { gmm, gmmAsync, kmeans, kmeansAsync, type Points } from './index.js';

/** k well-separated blobs in d dimensions, seeded. */
function blobs(n: number, d: number, k: number, seed: number): Points {
  const rng = createRng(seed);
  const data = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) data[i * d + j] = (i % k) * 5 + rng.next();
  return { data, n, d };
}

test('kmeansAsync gives exactly kmeans’s result and reports each restart', async () => {
  const p = blobs(600, 4, 5, 1);
  const sync = kmeans(p, { k: 5, nInit: 6, seed: 3 });
  const seen: [number, number][] = [];
  const res = await kmeansAsync(p, { k: 5, nInit: 6, seed: 3, onProgress: (done, total) => seen.push([done, total]) });
  assert.deepEqual(res.labels, sync.labels);
  assert.deepEqual(res.centers, sync.centers);
  assert.equal(res.inertia, sync.inertia);
  assert.deepEqual(
    seen,
    [1, 2, 3, 4, 5, 6].map((r) => [r, 6]),
  );
});

test('kmeansAsync stops between restarts once its signal is aborted: CancelledError naming k-means, no result', async () => {
  const p = blobs(600, 4, 5, 2);
  const ac = new AbortController();
  const seen: number[] = [];
  await assert.rejects(
    kmeansAsync(p, {
      k: 5,
      nInit: 50,
      seed: 1,
      signal: ac.signal,
      onProgress: (done) => {
        seen.push(done);
        if (done === 2) ac.abort();
      },
    }),
    (err: unknown) => err instanceof CancelledError && /k-means/.test(err.message),
  );
  assert.deepEqual(seen, [1, 2], 'no restart after the abort');
  // Aborted before it starts: rejects at once.
  await assert.rejects(kmeansAsync(p, { k: 5, signal: AbortSignal.abort() }), CancelledError);
});

test('an abort from a timer (as a SIGINT handler would) reaches a long kmeansAsync between restarts', async () => {
  const p = blobs(20_000, 8, 10, 3);
  const ac = new AbortController();
  let restarts = 0;
  setTimeout(() => ac.abort(), 1);
  await assert.rejects(kmeansAsync(p, { k: 10, nInit: 10_000, seed: 0, signal: ac.signal, onProgress: (d) => (restarts = d) }), CancelledError);
  assert.ok(restarts < 10_000, `stopped after ${restarts} restarts`);
});

test('gmmAsync fits exactly gmm’s mixture, and stops on an abort between EM iterations', async () => {
  const p = blobs(400, 3, 4, 4);
  const opts = { k: 4, seed: 2, kmeansNInit: 3, covariance: 'full' as const };
  const sync = gmm(p, opts);
  let steps = 0;
  let total = 0;
  const res = await gmmAsync(p, {
    ...opts,
    onProgress: (d, t) => {
      steps = d;
      total = t;
    },
  });
  assert.deepEqual(res.labels, sync.labels);
  assert.deepEqual(res.probabilities, sync.probabilities);
  assert.equal(res.logLikelihood, sync.logLikelihood);
  assert.ok(steps >= 3 && steps <= total, `${steps} steps of at most ${total}`);
  const ac = new AbortController();
  const seen: number[] = [];
  await assert.rejects(
    gmmAsync(p, {
      ...opts,
      tol: 0,
      signal: ac.signal,
      onProgress: (d) => {
        seen.push(d);
        if (d === 4) ac.abort();
      },
    }),
    (err: unknown) => err instanceof CancelledError && /Gaussian mixture/.test(err.message),
  );
  assert.deepEqual(seen, [1, 2, 3, 4]);
});
