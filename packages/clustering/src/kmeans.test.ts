import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRng, type Rng } from '@cvc/core';
import { ClusteringError, kmeans } from './index.js';
import { kmeansModuleBytes, kmeansWorkspace } from './kmeans-wasm.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

interface Naive {
  labels: Int32Array;
  inertia: number;
  iterations: number;
}

/**
 * The plain algorithm, written for clarity: k-means++ with 2 + ln(k) greedy
 * trials (every distance computed), then Lloyd with a full assignment scan
 * per iteration. Uses the seed's random numbers in the same order as kmeans().
 */
function naiveKmeans(data: Float64Array, n: number, d: number, k: number, nInit: number, maxIter: number, seed: number): Naive {
  const dist2 = (a: Float64Array, ao: number, b: Float64Array, bo: number): number => {
    let s = 0;
    for (let j = 0; j < d; j++) {
      const t = (a[ao + j] as number) - (b[bo + j] as number);
      s += t * t;
    }
    return s;
  };
  let varSum = 0;
  for (let j = 0; j < d; j++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += data[i * d + j] as number;
    m /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += ((data[i * d + j] as number) - m) ** 2;
    varSum += v / n;
  }
  const tolAbs = 1e-4 * (varSum / d);
  const rng: Rng = createRng(seed);
  const trials = 2 + Math.floor(Math.log(k));
  let best: Naive | undefined;
  for (let r = 0; r < nInit; r++) {
    const centers = new Float64Array(k * d);
    const first = rng.int(n);
    centers.set(data.subarray(first * d, first * d + d));
    let closest = new Float64Array(n);
    let pot = 0;
    for (let i = 0; i < n; i++) pot += closest[i] = dist2(data, i * d, centers, 0);
    for (let c = 1; c < k; c++) {
      let bestPot = Infinity;
      let bestIdx = 0;
      let bestClosest = closest;
      for (let t = 0; t < trials; t++) {
        let left = rng.next() * pot;
        let idx = 0;
        for (; idx < n - 1; idx++) {
          left -= closest[idx] as number;
          if (left <= 0) break;
        }
        const cl = new Float64Array(n);
        let s = 0;
        for (let i = 0; i < n; i++) s += cl[i] = Math.min(closest[i] as number, dist2(data, i * d, data, idx * d));
        if (s < bestPot) {
          bestPot = s;
          bestIdx = idx;
          bestClosest = cl;
        }
      }
      centers.set(data.subarray(bestIdx * d, bestIdx * d + d), c * d);
      closest = bestClosest;
      pot = bestPot;
    }
    const labels = new Int32Array(n);
    const assign = (): void => {
      for (let i = 0; i < n; i++) {
        let b = 0;
        let bd = Infinity;
        for (let c = 0; c < k; c++) {
          const v = dist2(data, i * d, centers, c * d);
          if (v < bd) {
            bd = v;
            b = c;
          }
        }
        labels[i] = b;
      }
    };
    assign();
    let iterations = 0;
    for (let it = 0; it < maxIter; it++) {
      iterations = it + 1;
      const sums = new Float64Array(k * d);
      const counts = new Float64Array(k);
      for (let i = 0; i < n; i++) {
        const l = labels[i] as number;
        counts[l] = (counts[l] as number) + 1;
        for (let j = 0; j < d; j++) sums[l * d + j] = (sums[l * d + j] as number) + (data[i * d + j] as number);
      }
      let total = 0;
      for (let c = 0; c < k; c++) {
        const m = counts[c] as number;
        if (m === 0) continue;
        for (let j = 0; j < d; j++) {
          const v = (sums[c * d + j] as number) / m;
          total += (v - (centers[c * d + j] as number)) ** 2;
          centers[c * d + j] = v;
        }
      }
      if (total <= tolAbs) break;
      assign();
    }
    let inertia = 0;
    for (let i = 0; i < n; i++) inertia += dist2(data, i * d, centers, (labels[i] as number) * d);
    if (!best || inertia < best.inertia) best = { labels: labels.slice(), inertia, iterations };
  }
  return best as Naive;
}

/** n points of d values around `blobs` random centers (spread 3), or uniform noise when blobs is 0. */
function blobs(n: number, d: number, blobsCount: number, seed: number): Float64Array {
  const rng = createRng(seed);
  const centers = Array.from({ length: Math.max(blobsCount, 1) * d }, () => rng.next() * 20 - 10);
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) out[i * d + j] = blobsCount === 0 ? rng.next() : (centers[(i % blobsCount) * d + j] as number) + 3 * (rng.next() - 0.5);
  }
  return out;
}

const relClose = (a: number, b: number, tol: number, what: string): void =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} != ${b}`);

test('k-means gives the plain algorithm’s labels, inertia and iteration count (pruned k-means++ and bounded Lloyd change nothing)', () => {
  const cases: [n: number, d: number, k: number, blobs: number, seed: number][] = [
    [300, 1, 3, 3, 1],
    [400, 2, 5, 4, 2],
    [500, 3, 4, 4, 3],
    [600, 7, 8, 5, 4],
    [700, 10, 10, 10, 5],
    [350, 13, 6, 0, 6],
    [200, 4, 1, 2, 7],
    [250, 5, 12, 3, 8],
  ];
  for (const [n, d, k, b, seed] of cases) {
    const data = blobs(n, d, b, seed);
    const want = naiveKmeans(data, n, d, k, 4, 300, seed);
    const got = kmeans({ data, n, d }, { k, nInit: 4, seed });
    const what = `n=${n} d=${d} k=${k}`;
    assert.deepEqual(Array.from(got.labels), Array.from(want.labels), `${what}: labels`);
    assert.equal(got.iterations, want.iterations, `${what}: iterations`);
    relClose(got.inertia, want.inertia, 1e-9, `${what}: inertia`);
  }
});

test('after every number of Lloyd iterations the bounded assignment is the full scan’s', () => {
  // Overlapping blobs: many points near the boundaries, so the bounds are tested hard.
  const [n, d, k] = [800, 6, 9];
  const data = blobs(n, d, 4, 11);
  for (let maxIter = 0; maxIter <= 12; maxIter++) {
    const want = naiveKmeans(data, n, d, k, 2, maxIter, 3);
    const got = kmeans({ data, n, d }, { k, nInit: 2, maxIter, seed: 3 });
    assert.deepEqual(Array.from(got.labels), Array.from(want.labels), `labels after ${maxIter} iterations`);
    relClose(got.inertia, want.inertia, 1e-9, `inertia after ${maxIter} iterations`);
  }
});

test('ties go to the lower center index, as in a plain scan (integer grid points, exact distances)', () => {
  // Points on a small integer grid with many duplicates: equal distances are exactly equal.
  const [n, d, k] = [240, 2, 5];
  const data = new Float64Array(n * d);
  for (let i = 0; i < n; i++) data.set([i % 4, Math.floor(i / 4) % 3], i * d);
  for (const seed of [0, 1, 2, 3]) {
    const want = naiveKmeans(data, n, d, k, 3, 300, seed);
    const got = kmeans({ data, n, d }, { k, nInit: 3, seed });
    assert.deepEqual(Array.from(got.labels), Array.from(want.labels), `seed ${seed}`);
    relClose(got.inertia, want.inertia, 1e-12, `seed ${seed}: inertia`);
  }
});

test('float32 points give the result of the same values in float64, and the seed fixes the result', () => {
  const [n, d, k] = [300, 5, 4];
  const data = blobs(n, d, 4, 21);
  const f32 = Float32Array.from(data);
  const a = kmeans({ data: f32, n, d }, { k, seed: 9 });
  const b = kmeans({ data: Float64Array.from(f32), n, d }, { k, seed: 9 });
  assert.deepEqual(a, b);
  assert.deepEqual(kmeans({ data: f32, n, d }, { k, seed: 9 }), a, 'reproducible');
  assert.notDeepEqual(kmeans({ data: f32, n, d }, { k, nInit: 1, seed: 10 }).centers, kmeans({ data: f32, n, d }, { k, nInit: 1, seed: 9 }).centers);
  assert.throws(
    () => kmeans({ data: f32, n: n + 1, d }, { k }),
    (e: unknown) => e instanceof ClusteringError && e.code === 'INVALID_POINTS',
  );
});

test('the wasm module imports only its memory and writes nothing below its buffers', () => {
  const W = (globalThis as unknown as { WebAssembly: { Module: { new (b: Uint8Array): object; imports(m: object): { name: string; kind: string }[] } } })
    .WebAssembly.Module;
  assert.deepEqual(
    W.imports(new W(kmeansModuleBytes())).map((i) => `${i.name}:${i.kind}`),
    ['memory:memory'],
  );
  const [n, d, k] = [500, 3, 4];
  const w = kmeansWorkspace(n, d, k, 3);
  const low = new Uint8Array(w.x.buffer, 0, w.xPtr);
  low.fill(0xab);
  w.x.set(blobs(n, d, 4, 5));
  w.centers.set(w.x.subarray(0, k * d));
  w.k.kpp_first(w.xPtr, n, d, w.centersPtr, w.closestPtr, w.labelsPtr, w.lowerPtr);
  w.k.lloyd(w.xPtr, n, d, w.centersPtr, 1, 5, 0, w.labelsPtr, w.closestPtr, w.lowerPtr, w.wsPtr);
  assert.ok(
    low.every((b) => b === 0xab),
    `byte ${low.findIndex((b) => b !== 0xab)} below the buffers was written`,
  );
});

test('the committed cvc-kmeans.wasm is what scripts/build-wasm.sh builds from csrc/kmeans.c', (t) => {
  const have = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
  if (!have('clang-16') || !have('wasm-ld-16')) {
    t.skip('clang-16 and lld-16 are not installed (scripts/test.sh installs them where the distribution has them)');
    return;
  }
  const out = mkdtempSync(join(tmpdir(), 'cvc-kmeans-wasm-'));
  try {
    const r = spawnSync('bash', [join(root, 'scripts/build-wasm.sh'), out], { cwd: root, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(
      Buffer.from(readFileSync(join(out, 'cvc-kmeans.wasm'))).equals(readFileSync(join(root, 'packages/clustering/wasm/cvc-kmeans.wasm'))),
      'packages/clustering/wasm/cvc-kmeans.wasm is out of date with csrc/kmeans.c: run scripts/build-wasm.sh and commit the result',
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('a NaN or an infinity in the points, or a bad option, is a ClusteringError naming it (not labels and an inertia of NaN)', () => {
  const data = Float64Array.from([0, 0, 0, 1, 5, 5, 5, 6, 10, 10, 10, 11]);
  const is = (code: string, field: string, text: string) => (e: unknown) =>
    e instanceof ClusteringError && e.code === code && e.field === field && e.message.includes(text);
  for (const [v, text] of [
    [NaN, 'row 3 column 1 is NaN'],
    [Infinity, 'row 3 column 1 is Infinity'],
  ] as const) {
    const bad = data.slice();
    bad[7] = v;
    assert.throws(() => kmeans({ data: bad, n: 6, d: 2 }, { k: 2, seed: 0 }), is('INVALID_POINTS', 'points', text));
    assert.throws(() => kmeans({ data: Float32Array.from(bad), n: 6, d: 2 }, { k: 2, seed: 0 }), is('INVALID_POINTS', 'points', text));
  }
  // Values past n x d are not the points' and are not looked at.
  assert.equal(kmeans({ data: Float64Array.from([...data, NaN]), n: 6, d: 2 }, { k: 3, seed: 0 }).labels.length, 6);
  const ok = { data, n: 6, d: 2 };
  assert.throws(() => kmeans(ok, { k: 2, nInit: 0 }), is('INVALID_OPTION', 'nInit', 'got 0'));
  assert.throws(() => kmeans(ok, { k: 2, maxIter: -1 }), is('INVALID_OPTION', 'maxIter', 'got -1'));
  assert.throws(() => kmeans(ok, { k: 2, tol: NaN }), is('INVALID_OPTION', 'tol', 'got NaN'));
  assert.throws(() => kmeans(ok, { k: 2, seed: 1.5 }), is('INVALID_OPTION', 'seed', 'got 1.5'));
  assert.deepEqual(Array.from(kmeans(ok, { k: 3, seed: 0 }).labels).sort(), [0, 0, 1, 1, 2, 2]);
});
