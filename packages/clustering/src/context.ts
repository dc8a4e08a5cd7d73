import { createRng, permutation } from '@cvc/core';
import { ClusteringError, checkInt, checkPoints } from './errors.js';
import type { Points } from './kmeans.js';

/** The points to cluster followed by a seeded sample of context rows, and which rows of the pool were taken. */
export interface WithContext {
  /** `points` rows first (in their order), then the sampled `pool` rows: n + count rows of d values. */
  readonly points: { readonly data: Float64Array; readonly n: number; readonly d: number };
  /** The `pool` rows appended, in the order they follow `points`. */
  readonly taken: Int32Array;
  /** How many leading rows are the caller's own points (labels of the first `own` rows are the result). */
  readonly own: number;
}

/**
 * Transductive clustering's input: `points` followed by `count` rows drawn
 * (seeded, without replacement) from `pool`, so UMAP's neighbour graph and the
 * assignment see more of the data than the images being clustered (N2D fits
 * on all 70,000 Fashion-MNIST images and scores the test set). Cluster the
 * result and keep the labels of its first `own` rows. `count` 0 returns the
 * points alone. Throws ClusteringError for points or a pool whose values do
 * not make their rows or hold a NaN or an infinity, a pool of another width,
 * or a count above the pool's rows.
 */
export function withContext(points: Points, pool: Points, count: number, seed = 0): WithContext {
  checkInt('count', count, 0);
  checkInt('seed', seed, -0x80000000, 0xffffffff);
  // A short buffer would otherwise be padded with rows of zeros, and a NaN would reach the clustering as context.
  checkPoints('points', points);
  const { n, d } = points;
  if (count > 0 && pool.d !== d) throw new ClusteringError('INVALID_POINTS', 'context', `rows of ${pool.d} values do not match the points' ${d}`);
  if (count > 0) checkPoints('context', pool);
  if (count > pool.n) throw new ClusteringError('TOO_FEW_POINTS', 'context', `${count} context rows asked for, the pool holds ${pool.n}`);
  const taken = count > 0 ? Int32Array.from(permutation(pool.n, createRng(seed)).slice(0, count)) : new Int32Array(0);
  const data = new Float64Array((n + count) * d);
  data.set(points.data.subarray(0, n * d));
  taken.forEach((row, i) => data.set(pool.data.subarray(row * d, (row + 1) * d), (n + i) * d));
  return { points: { data, n: n + count, d }, taken, own: n };
}
