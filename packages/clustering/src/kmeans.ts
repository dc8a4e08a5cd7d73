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
      for (let i = 0, o = 0; i < n; i++, o += d) {
        let dd = 0;
        for (let j = 0; j < d; j++) {
          const t = (data[o + j] as number) - (cand[j] as number);
          dd += t * t;
        }
        const v = Math.min(closest[i] as number, dd);
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

/**
 * One Lloyd run from `centers` (updated in place), accelerated with Hamerly's
 * bounds: an upper bound on each point's distance to its center and a lower
 * bound on its distance to any other center skip the points whose assignment
 * cannot change. The result is the same as plain Lloyd.
 */
function lloyd(p: Points64, centers: Float64Array, k: number, maxIter: number, tolAbs: number): { labels: Int32Array; inertia: number; iterations: number } {
  const { data, n, d } = p;
  const labels = new Int32Array(n);
  const upper = new Float64Array(n);
  const lower = new Float64Array(n);
  const sums = new Float64Array(k * d);
  const counts = new Float64Array(k);
  const half = new Float64Array(k);
  const shift = new Float64Array(k);
  const old = new Float64Array(k * d);
  const dist = (i: number, c: number): number => Math.sqrt(dist2(data, i, d, centers, c * d));
  // Exact nearest and second-nearest center of point i (squared distances, one sqrt each at the end).
  const search = (i: number): void => {
    const o = i * d;
    let b = 0;
    let d1 = Infinity;
    let d2 = Infinity;
    for (let c = 0; c < k; c++) {
      const co = c * d;
      let s = 0;
      for (let j = 0; j < d; j++) {
        const t = (data[o + j] as number) - (centers[co + j] as number);
        s += t * t;
      }
      if (s < d1) {
        d2 = d1;
        d1 = s;
        b = c;
      } else if (s < d2) d2 = s;
    }
    labels[i] = b;
    upper[i] = Math.sqrt(d1);
    lower[i] = Math.sqrt(d2);
  };
  for (let i = 0; i < n; i++) {
    search(i);
    const b = labels[i] as number;
    counts[b] = (counts[b] as number) + 1;
    for (let j = 0; j < d; j++) sums[b * d + j] = (sums[b * d + j] as number) + (data[i * d + j] as number);
  }
  let iterations = 0;
  for (let it = 0; it < maxIter; it++) {
    iterations = it + 1;
    // Move the centers to their means; an empty cluster keeps its center.
    old.set(centers);
    let total = 0;
    let maxShift = 0;
    let maxC = -1;
    let secondShift = 0;
    for (let c = 0; c < k; c++) {
      const m = counts[c] as number;
      let s2 = 0;
      if (m > 0) {
        for (let j = 0; j < d; j++) {
          const v = (sums[c * d + j] as number) / m;
          s2 += (v - (old[c * d + j] as number)) ** 2;
          centers[c * d + j] = v;
        }
      }
      total += s2;
      const sh = Math.sqrt(s2);
      shift[c] = sh;
      if (sh > maxShift) {
        secondShift = maxShift;
        maxShift = sh;
        maxC = c;
      } else if (sh > secondShift) secondShift = sh;
    }
    if (total <= tolAbs) break;
    for (let i = 0; i < n; i++) {
      const a = labels[i] as number;
      upper[i] = (upper[i] as number) + (shift[a] as number);
      lower[i] = (lower[i] as number) - (a === maxC ? secondShift : maxShift);
    }
    for (let c = 0; c < k; c++) {
      let m = Infinity;
      for (let c2 = 0; c2 < k; c2++) {
        if (c2 === c) continue;
        let s2 = 0;
        for (let j = 0; j < d; j++) s2 += ((centers[c * d + j] as number) - (centers[c2 * d + j] as number)) ** 2;
        m = Math.min(m, s2);
      }
      half[c] = Math.sqrt(m) / 2;
    }
    for (let i = 0; i < n; i++) {
      const a = labels[i] as number;
      const bound = Math.max(half[a] as number, lower[i] as number);
      if ((upper[i] as number) <= bound) continue;
      upper[i] = dist(i, a);
      if ((upper[i] as number) <= bound) continue;
      search(i);
      const b = labels[i] as number;
      if (b !== a) {
        counts[a] = (counts[a] as number) - 1;
        counts[b] = (counts[b] as number) + 1;
        for (let j = 0; j < d; j++) {
          const v = data[i * d + j] as number;
          sums[a * d + j] = (sums[a * d + j] as number) - v;
          sums[b * d + j] = (sums[b * d + j] as number) + v;
        }
      }
    }
  }
  let inertia = 0;
  for (let i = 0; i < n; i++) inertia += dist2(data, i, d, centers, (labels[i] as number) * d);
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
