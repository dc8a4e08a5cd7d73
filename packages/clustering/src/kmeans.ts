import { createRng, type Rng } from '@cvc/core';
import { ClusteringError, checkFinite, checkInt, checkNumber } from './errors.js';
import { kmeansWorkspace, type KMeansWorkspace } from './kmeans-wasm.js';
import { drain, runSteps, type StepOptions, type Steps } from './steps.js';

/** Row-major points: `n` rows of `d` values. */
export interface Points {
  readonly data: Float32Array | Float64Array;
  readonly n: number;
  readonly d: number;
}

export interface KMeansOptions {
  readonly k: number;
  /** Restarts from different k-means++ seeds; the lowest inertia wins (default 10). */
  readonly nInit?: number;
  readonly maxIter?: number;
  /** Stop when the centers move less than tol x the mean per-feature variance (default 1e-4, as scikit-learn). */
  readonly tol?: number;
  readonly seed?: number;
}

export interface KMeansResult {
  readonly labels: Int32Array;
  /** k x d, row-major. */
  readonly centers: Float64Array;
  /** Sum of squared distances to the nearest center. */
  readonly inertia: number;
  readonly iterations: number;
}

/**
 * k-means++ seeding with 2 + ln(k) local trials per center (scikit-learn's
 * greedy variant) into `w.centers`: each trial is sampled proportionally to
 * the squared distance to the nearest chosen center, and the trial leaving
 * the lowest potential (the first of equals) is kept.
 */
function kmeansPlusPlus(w: KMeansWorkspace, n: number, d: number, k: number, trials: number, rng: Rng): void {
  const { k: km, x, centers, cands, pots } = w;
  const first = rng.int(n);
  centers.set(x.subarray(first * d, first * d + d), 0);
  let pot = km.kpp_first(w.xPtr, n, d, w.centersPtr, w.closestPtr, w.labelsPtr, w.lowerPtr);
  for (let c = 1; c < k; c++) {
    for (let t = 0; t < trials; t++) {
      const idx = km.kpp_sample(w.closestPtr, n, rng.next() * pot);
      cands.set(x.subarray(idx * d, idx * d + d), t * d);
    }
    km.kpp_trials(w.xPtr, n, d, w.closestPtr, w.labelsPtr, w.centersPtr, c, w.candsPtr, trials, w.potsPtr, w.qPtr, w.tvPtr);
    let best = 0;
    for (let t = 1; t < trials; t++) if ((pots[t] as number) < (pots[best] as number)) best = t;
    centers.set(cands.subarray(best * d, best * d + d), c * d);
    pot = km.kpp_update(n, d, w.closestPtr, w.labelsPtr, w.lowerPtr, w.centersPtr, c, w.tvPtr + best * n * 8, w.qPtr);
  }
}

/**
 * k-means (Lloyd) with k-means++ seeding and restarts, seeded and
 * reproducible. The distance work runs in cvc's WebAssembly SIMD kernels
 * (csrc/kmeans.c) in float64; Lloyd's iterations skip, with Hamerly's bounds,
 * the points whose assignment cannot change, so the result is plain Lloyd's.
 * Throws ClusteringError: INVALID_POINTS for a shape that is not n rows of
 * d values or a NaN/infinite value (naming the row), TOO_FEW_POINTS for no
 * points or fewer than k, INVALID_OPTION for a bad k, nInit, maxIter, tol or seed.
 */
export function kmeans(input: Points, opts: KMeansOptions): KMeansResult {
  return drain(kmeansSteps(input, opts));
}

/**
 * kmeans, giving the event loop a turn after each restart: `signal` can stop
 * it between restarts (CancelledError) and `onProgress` hears (restarts done,
 * nInit). The same result as kmeans for the same options.
 */
export function kmeansAsync(input: Points, opts: KMeansOptions & StepOptions): Promise<KMeansResult> {
  return runSteps(kmeansSteps(input, opts), opts.nInit ?? 10, 'k-means', opts);
}

/**
 * Throws ClusteringError for points whose shape is not n rows of d values
 * (INVALID_POINTS), no points or fewer than k (TOO_FEW_POINTS), or a k that
 * is not an integer >= 1 (INVALID_OPTION). `data` may hold more than n x d
 * values (the rest is ignored).
 */
function checkKMeansInput(input: Points, k: number): void {
  const { n, d } = input;
  const len = input.data.length;
  if (!Number.isInteger(n) || n < 0) throw new ClusteringError('INVALID_POINTS', 'points', `n must be an integer >= 0, got ${n}`);
  if (!Number.isInteger(d) || d < 1) throw new ClusteringError('INVALID_POINTS', 'points', `d (values per point) must be an integer >= 1, got ${d}`);
  if (len < n * d) throw new ClusteringError('INVALID_POINTS', 'points', `${len} values do not make ${n} rows of ${d}`);
  checkInt('k', k, 1);
  if (n === 0) throw new ClusteringError('TOO_FEW_POINTS', 'points', 'no points to cluster');
  if (k > n) throw new ClusteringError('TOO_FEW_POINTS', 'k', `${k} clusters need at least ${k} points, got ${n}`);
}

/**
 * kmeans as steps: yields after each restart (restarts done). Throws
 * ClusteringError for bad points or options (see checkKMeansInput).
 */
export function* kmeansSteps(input: Points, opts: KMeansOptions): Steps<KMeansResult> {
  const { k } = opts;
  const { n, d } = input;
  checkKMeansInput(input, k);
  const nInit = opts.nInit ?? 10;
  checkInt('nInit', nInit, 1);
  const maxIter = opts.maxIter ?? 300;
  checkInt('maxIter', maxIter, 0);
  const tol = opts.tol ?? 1e-4;
  checkNumber('tol', tol, 0);
  const seed = opts.seed ?? 0;
  checkInt('seed', seed, -0x80000000, 0xffffffff);
  // A NaN or an infinity poisons every distance: k-means would return labels and an inertia of NaN without a word.
  checkFinite('points', input.data, n * d, d);
  const trials = 2 + Math.floor(Math.log(k));
  const w = kmeansWorkspace(n, d, k, trials);
  const x = w.x;
  x.set(input.data.length === n * d ? input.data : input.data.subarray(0, n * d));
  // scikit-learn: tol is relative to the mean variance of the features.
  let varSum = 0;
  for (let j = 0; j < d; j++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += x[i * d + j] as number;
    m /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += ((x[i * d + j] as number) - m) ** 2;
    varSum += v / n;
  }
  const tolAbs = tol * (varSum / d);
  const rng = createRng(seed);
  let best: KMeansResult | undefined;
  for (let r = 0; r < nInit; r++) {
    kmeansPlusPlus(w, n, d, k, trials, rng);
    const iterations = w.k.lloyd(w.xPtr, n, d, w.centersPtr, k, maxIter, tolAbs, w.labelsPtr, w.closestPtr, w.lowerPtr, w.wsPtr);
    const inertia = w.k.inertia(w.xPtr, n, d, w.centersPtr, w.labelsPtr);
    if (!best || inertia < best.inertia) best = { labels: w.labels.slice(), centers: w.centers.slice(), inertia, iterations };
    yield r + 1;
  }
  return best as KMeansResult;
}
