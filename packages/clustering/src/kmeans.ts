import { createRng, type Rng } from '@cvc/core';

/** Row-major points: `n` rows of `d` values. */
export interface Points {
  readonly data: Float32Array | Float64Array;
  readonly n: number;
  readonly d: number;
}

interface Points64 {
  readonly data: Float64Array;
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

/** Squared distance from point i to row `off` of `c` (d values). */
function dist2(data: Float64Array, i: number, d: number, c: Float64Array, off: number): number {
  let s = 0;
  const o = i * d;
  for (let j = 0; j < d; j++) {
    const t = (data[o + j] as number) - (c[off + j] as number);
    s += t * t;
  }
  return s;
}

/** k-means++ seeding with 2 + ln(k) local trials per center (scikit-learn's greedy variant). */
function kmeansPlusPlus(p: Points64, k: number, rng: Rng): Float64Array {
  const { data, n, d } = p;
  const centers = new Float64Array(k * d);
  const first = rng.int(n);
  for (let j = 0; j < d; j++) centers[j] = data[first * d + j] as number;
  const closest = new Float64Array(n);
  let pot = 0;
  for (let i = 0; i < n; i++) pot += closest[i] = dist2(data, i, d, centers, 0);
  const trials = 2 + Math.floor(Math.log(k));
  const cand = new Float64Array(d);
  const bestClosest = new Float64Array(n);
  const trialClosest = new Float64Array(n);
  for (let c = 1; c < k; c++) {
    let bestPot = Infinity;
    for (let t = 0; t < trials; t++) {
      // Sample proportionally to the squared distance to the nearest chosen center.
      let r = rng.next() * pot;
      let idx = 0;
      for (; idx < n - 1; idx++) {
        r -= closest[idx] as number;
        if (r <= 0) break;
      }
      for (let j = 0; j < d; j++) cand[j] = data[idx * d + j] as number;
      let s = 0;
      for (let i = 0; i < n; i++) {
        const v = Math.min(closest[i] as number, dist2(data, i, d, cand, 0));
        trialClosest[i] = v;
        s += v;
      }
      if (s < bestPot) {
        bestPot = s;
        bestClosest.set(trialClosest);
        for (let j = 0; j < d; j++) centers[c * d + j] = cand[j] as number;
      }
    }
    closest.set(bestClosest);
    pot = bestPot;
  }
  return centers;
}

/** One Lloyd run from `centers` (updated in place). */
function lloyd(p: Points64, centers: Float64Array, k: number, maxIter: number, tolAbs: number): { labels: Int32Array; inertia: number; iterations: number } {
  const { data, n, d } = p;
  const labels = new Int32Array(n);
  const sums = new Float64Array(k * d);
  const counts = new Float64Array(k);
  const cnorm = new Float64Array(k);
  const xnorm = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += (data[i * d + j] as number) ** 2;
    xnorm[i] = s;
  }
  const x = new Float64Array(d);
  let iterations = 0;
  let inertia = 0;
  for (let it = 0; it < maxIter; it++) {
    iterations = it + 1;
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (centers[c * d + j] as number) ** 2;
      cnorm[c] = s;
    }
    sums.fill(0);
    counts.fill(0);
    inertia = 0;
    for (let i = 0; i < n; i++) {
      const o = i * d;
      for (let j = 0; j < d; j++) x[j] = data[o + j] as number;
      // ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2
      let best = 0;
      let bestD = Infinity;
      for (let c = 0; c < k; c++) {
        let dot = 0;
        const co = c * d;
        for (let j = 0; j < d; j++) dot += (x[j] as number) * (centers[co + j] as number);
        const dd = (cnorm[c] as number) - 2 * dot;
        if (dd < bestD) {
          bestD = dd;
          best = c;
        }
      }
      labels[i] = best;
      inertia += Math.max(0, bestD + (xnorm[i] as number));
      counts[best] = (counts[best] as number) + 1;
      const bo = best * d;
      for (let j = 0; j < d; j++) sums[bo + j] = (sums[bo + j] as number) + (x[j] as number);
    }
    let shift = 0;
    for (let c = 0; c < k; c++) {
      const m = counts[c] as number;
      if (m === 0) continue; // an empty cluster keeps its center
      for (let j = 0; j < d; j++) {
        const v = (sums[c * d + j] as number) / m;
        shift += (v - (centers[c * d + j] as number)) ** 2;
        centers[c * d + j] = v;
      }
    }
    if (shift <= tolAbs) break;
  }
  return { labels, inertia, iterations };
}

/** k-means (Lloyd) with k-means++ seeding and restarts, seeded and reproducible. */
export function kmeans(input: Points, opts: KMeansOptions): KMeansResult {
  const { k } = opts;
  if (!Number.isInteger(k) || k < 1 || k > input.n) throw new RangeError(`k must be 1..${input.n}, got ${k}`);
  // One element type keeps V8's hot loops monomorphic (several times faster than a Float32Array/Float64Array mix).
  const p: Points64 = { data: input.data instanceof Float64Array ? input.data : Float64Array.from(input.data), n: input.n, d: input.d };
  const nInit = opts.nInit ?? 10;
  const maxIter = opts.maxIter ?? 300;
  // scikit-learn: tol is relative to the mean variance of the features.
  let varSum = 0;
  for (let j = 0; j < p.d; j++) {
    let m = 0;
    for (let i = 0; i < p.n; i++) m += p.data[i * p.d + j] as number;
    m /= p.n;
    let v = 0;
    for (let i = 0; i < p.n; i++) v += ((p.data[i * p.d + j] as number) - m) ** 2;
    varSum += v / p.n;
  }
  const tolAbs = (opts.tol ?? 1e-4) * (varSum / p.d);
  const rng = createRng(opts.seed ?? 0);
  let best: KMeansResult | undefined;
  for (let r = 0; r < nInit; r++) {
    const centers = kmeansPlusPlus(p, k, rng);
    const run = lloyd(p, centers, k, maxIter, tolAbs);
    if (!best || run.inertia < best.inertia) best = { ...run, centers };
  }
  return best as KMeansResult;
}
