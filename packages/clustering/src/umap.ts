import { UMAP } from 'umap-js';
import { createRng, permutation, throwIfAborted } from '@cvc/core';
import { ClusteringError, checkInt, checkNumber, checkPoints } from './errors.js';
import type { Points } from './kmeans.js';

/** Where umapEmbed is: the k-nearest-neighbour graph, the layout epochs, or placing the points outside the sample. */
export interface UmapProgress {
  readonly phase: 'neighbors' | 'layout' | 'transform';
  readonly done: number;
  readonly total: number;
}

export interface UmapOptions {
  /** Output dimensions (default 10, as N2D). */
  readonly dims?: number;
  /** Neighbours of each point in the graph (default 20, as N2D); must be below the number of fitted points. */
  readonly neighbors?: number;
  /** Minimum distance of points in the layout (default 0: tight clumps, what clustering wants). */
  readonly minDist?: number;
  /** Seeds every random choice of umap-js (default 0): the same seed gives the same embedding. */
  readonly seed?: number;
  /**
   * Fit on a seeded sample of this many points and transform the rest onto
   * it (default: fit all). UMAP's cost grows faster than n; a sample of a few
   * thousand keeps large sets fast.
   */
  readonly sample?: number;
  /**
   * Layout epochs (default: umap-js's choice from the fitted count, 200 to
   * 500), rounded up to a multiple of 3: umap-js transforms with epochs / 3
   * and never stops when that is not a whole number.
   */
  readonly epochs?: number;
  /** Points transformed per call after the fit (default 2000), so progress and aborts come between chunks. */
  readonly chunk?: number;
  readonly onProgress?: (p: UmapProgress) => void;
  /** Checked between layout epochs and transform chunks; an abort throws CancelledError. */
  readonly signal?: AbortSignal;
}

/** The embedding (n x dims, in the input's row order) and how it was made. */
export interface UmapResult {
  readonly embedding: { readonly data: Float64Array; readonly n: number; readonly d: number };
  /** Rows fitted (the sample), in ascending order; the others were transformed. */
  readonly fitted: Int32Array;
  readonly epochs: number;
}

const rows = (p: Points, idx: ArrayLike<number>): number[][] =>
  Array.from({ length: idx.length }, (_, i) => Array.from(p.data.subarray((idx[i] as number) * p.d, ((idx[i] as number) + 1) * p.d)));

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * UMAP of `points` with umap-js (the PAIR-code port of McInnes' UMAP),
 * seeded through @cvc/core's generator, so one seed gives one embedding.
 * With `sample` below n, UMAP is fitted on a seeded sample and the remaining
 * points are transformed onto that layout. Throws ClusteringError for a bad
 * option (dims 0, neighbours >= the fitted count, ...) or non-finite points.
 */
export async function umapEmbed(points: Points, opts: UmapOptions = {}): Promise<UmapResult> {
  checkPoints('points', points);
  const dims = opts.dims ?? 10;
  checkInt('dims', dims, 1);
  const neighbors = opts.neighbors ?? 20;
  checkInt('neighbors', neighbors, 2);
  const minDist = opts.minDist ?? 0;
  checkNumber('minDist', minDist, 0, 1);
  const seed = opts.seed ?? 0;
  checkInt('seed', seed, -0x80000000, 0xffffffff);
  const chunk = opts.chunk ?? 2000;
  checkInt('chunk', chunk, 1);
  if (opts.epochs !== undefined) checkInt('epochs', opts.epochs, 1);
  const n = points.n;
  const sample = opts.sample ?? n;
  checkInt('sample', sample, 1);
  const fitCount = Math.min(sample, n);
  if (fitCount <= neighbors)
    throw new ClusteringError(
      'TOO_FEW_POINTS',
      'neighbors',
      `${neighbors} neighbours need more than ${neighbors} fitted points, got ${fitCount}${fitCount < n ? ' (the sample)' : ''}; ${fitCount >= 3 ? `give neighbors ${fitCount - 1} or lower` : 'UMAP needs at least 3'}${fitCount < n ? ', or a larger sample' : ''}`,
    );
  const rng = createRng(seed);
  // The sample: the first fitCount of a seeded permutation, in row order.
  const fitted = Int32Array.from(fitCount < n ? permutation(n, rng).slice(0, fitCount) : Array.from({ length: n }, (_, i) => i)).sort();
  const umap = new UMAP({
    nComponents: dims,
    nNeighbors: neighbors,
    minDist,
    // umap-js requires spread >= minDist; 1 is UMAP's default.
    spread: 1,
    random: () => rng.next(),
    ...(opts.epochs !== undefined ? { nEpochs: Math.ceil(opts.epochs / 3) * 3 } : {}),
  });
  const out = new Float64Array(n * dims);
  const report = (phase: UmapProgress['phase'], done: number, total: number): void => opts.onProgress?.({ phase, done, total });
  report('neighbors', 0, 1);
  await tick();
  throwIfAborted(opts.signal, 'UMAP');
  const epochs = umap.initializeFit(rows(points, fitted));
  report('neighbors', 1, 1);
  for (let e = 0; e < epochs;) {
    e = umap.step();
    if (e % 10 === 0 || e === epochs) {
      report('layout', e, epochs);
      await tick();
      throwIfAborted(opts.signal, 'UMAP');
    }
  }
  const emb = umap.getEmbedding();
  fitted.forEach((row, i) => out.set(emb[i] as number[], row * dims));
  const inSample = new Uint8Array(n);
  for (const r of fitted) inSample[r] = 1;
  const rest: number[] = [];
  for (let i = 0; i < n; i++) if (!inSample[i]) rest.push(i);
  for (let s = 0; s < rest.length;) {
    let part = rest.slice(s, s + chunk);
    // umap-js moves the fitted layout too when a batch is exactly as large as the fit: keep batches a different size.
    if (part.length === fitCount) part = part.slice(0, -1);
    const placed = umap.transform(rows(points, part));
    part.forEach((row, i) => out.set(placed[i] as number[], row * dims));
    s += part.length;
    report('transform', s, rest.length);
    await tick();
    throwIfAborted(opts.signal, 'UMAP');
  }
  return { embedding: { data: out, n, d: dims }, fitted, epochs };
}
