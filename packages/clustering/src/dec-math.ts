/**
 * The arithmetic of deep embedded clustering (DEC, Xie et al. 2016; IDEC, Guo
 * et al. 2017; DCEC, Guo et al. 2017), on plain arrays: the Student-t soft
 * assignment, the sharpened target distribution, KL(P‖Q), the share of
 * assignments that changed between two refreshes of the target, and the stop
 * rule. The tfjs fine-tune (@cvc/model fineTuneClustering) uses these for its
 * target refreshes and its tests check its tensor version against them.
 */

import { ClusteringError } from './errors.js';

/** Keras' epsilon: KL(P‖Q) clips p and q to [eps, 1] as Keras' `kld` loss does. */
export const KL_EPSILON = 1e-7;

/**
 * Student-t soft assignment with one degree of freedom (alpha = 1):
 * q_ij = (1 + |z_i − μ_j|²)^-1 / Σ_j' (1 + |z_i − μ_j'|²)^-1.
 * `codes` is n x d and `centres` k x d, row-major; returns n x k, row-major.
 */
export function softAssignment(codes: ArrayLike<number>, centres: ArrayLike<number>, n: number, d: number, k: number): Float64Array {
  if (codes.length !== n * d) throw new ClusteringError('INVALID_POINTS', 'codes', `${codes.length} values, expected n x d = ${n} x ${d}`);
  if (centres.length !== k * d) throw new ClusteringError('INVALID_POINTS', 'centres', `${centres.length} values, expected k x d = ${k} x ${d}`);
  const q = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let j = 0; j < k; j++) {
      let d2 = 0;
      for (let c = 0; c < d; c++) {
        const t = (codes[i * d + c] as number) - (centres[j * d + c] as number);
        d2 += t * t;
      }
      const v = 1 / (1 + d2);
      q[i * k + j] = v;
      sum += v;
    }
    for (let j = 0; j < k; j++) q[i * k + j] = (q[i * k + j] as number) / sum;
  }
  return q;
}

/**
 * The target distribution: p_ij = (q_ij² / f_j) / Σ_j' (q_ij'² / f_j'), with
 * f_j = Σ_i q_ij the soft frequency of cluster j. Squaring sharpens the
 * assignments; dividing by f_j keeps large clusters from taking over.
 */
export function targetDistribution(q: ArrayLike<number>, n: number, k: number): Float64Array {
  if (q.length !== n * k) throw new ClusteringError('INVALID_POINTS', 'q', `${q.length} values, expected n x k = ${n} x ${k}`);
  const f = new Float64Array(k);
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) f[j] = (f[j] as number) + (q[i * k + j] as number);
  const p = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let j = 0; j < k; j++) {
      const fj = f[j] as number;
      const v = fj > 0 ? (q[i * k + j] as number) ** 2 / fj : 0;
      p[i * k + j] = v;
      sum += v;
    }
    if (sum > 0) for (let j = 0; j < k; j++) p[i * k + j] = (p[i * k + j] as number) / sum;
  }
  return p;
}

/**
 * KL(P‖Q) per point, averaged over the n points: (1/n) Σ_i Σ_j p_ij log(p_ij / q_ij),
 * with p and q clipped to [1e-7, 1] (Keras' `kld`, the loss DEC, IDEC and DCEC train).
 */
export function klDivergence(p: ArrayLike<number>, q: ArrayLike<number>, n: number, k: number): number {
  if (p.length !== n * k || q.length !== n * k)
    throw new ClusteringError('INVALID_POINTS', 'p, q', `must both have n x k = ${n} x ${k} values (got ${p.length} and ${q.length})`);
  const clip = (v: number): number => Math.min(1, Math.max(KL_EPSILON, v));
  let s = 0;
  for (let i = 0; i < n * k; i++) {
    const pi = clip(p[i] as number);
    s += pi * Math.log(pi / clip(q[i] as number));
  }
  return s / n;
}

/** The hard assignment of each row: argmax_j of an n x k matrix (the first maximum on ties). */
export function argmaxRows(m: ArrayLike<number>, n: number, k: number): { labels: Int32Array; confidence: Float32Array } {
  const labels = new Int32Array(n);
  const confidence = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bv = -Infinity;
    for (let j = 0; j < k; j++) {
      const v = m[i * k + j] as number;
      if (v > bv) {
        bv = v;
        best = j;
      }
    }
    labels[i] = best;
    confidence[i] = bv;
  }
  return { labels, confidence };
}

/** Share of points whose assignment differs between `before` and `after` (0..1). */
export function changedShare(before: ArrayLike<number>, after: ArrayLike<number>): number {
  if (before.length !== after.length) throw new ClusteringError('INVALID_POINTS', 'after', `${before.length} assignments before but ${after.length} after`);
  if (after.length === 0) return 0;
  let moved = 0;
  for (let i = 0; i < after.length; i++) if (before[i] !== after[i]) moved++;
  return moved / after.length;
}

/** Why a fine-tune stops, or null to go on. */
export type StopReason = 'converged' | 'max-iterations';

/**
 * The stop rule of DEC, IDEC and DCEC, asked at each refresh of the target
 * (every `updateInterval` batches, and once more when the batch budget is
 * spent): converged when fewer than `tol` of the assignments changed since
 * the previous refresh, but never at the first refresh (iteration 0, whose
 * "previous" assignments are the k-means initialisation); max-iterations once
 * `iteration` batches reach `maxIterations`.
 */
export function stopDecision(s: { iteration: number; changed: number; tol: number; maxIterations: number }): StopReason | null {
  if (s.iteration > 0 && s.changed < s.tol) return 'converged';
  if (s.iteration >= s.maxIterations) return 'max-iterations';
  return null;
}
