import { throwIfAborted } from '@cvc/core';
import {
  ClusteringError,
  gmmAsync,
  kmeansAsync,
  umapEmbed,
  withContext,
  type Covariance,
  type GmmModel,
  type GmmOptions,
  type KMeansOptions,
  type KMeansResult,
  type Points,
  type UmapOptions,
} from '@cvc/clustering';
import { decRefine } from '@cvc/model';
import { choiceOpt, floatOpt, intOpt, positiveInt } from './args.js';
import { distancesToCentres, type ScoreColumn } from './assignments.js';
import { UsageError } from './errors.js';
import { Progress, type ProgressStream } from './progress.js';

/** Above this many dimensions a Gaussian mixture is fitted with diagonal covariances (a full one would take hours). */
export const FULL_COVARIANCE_MAX_DIMS = 64;

/** The options of `cvc cluster` that choose how the codes are clustered. */
export const CLUSTER_METHOD_OPTIONS = {
  manifold: { type: 'string' },
  'umap-dims': { type: 'string' },
  neighbors: { type: 'string' },
  'min-dist': { type: 'string' },
  'umap-sample': { type: 'string' },
  'umap-context': { type: 'string' },
  assign: { type: 'string' },
  covariance: { type: 'string' },
  'dec-centres': { type: 'boolean' },
  dec: { type: 'boolean' },
} as const;

/** What `--dec` says now that it is gone. */
export const DEC_GONE =
  '--dec is gone, its name promised more than it did: --dec-centres is the same refinement (it moves only the centres over the fixed codes; the encoder is not fine-tuned); ' +
  'to fine-tune the encoder with DEC, IDEC or DCEC submit a clustering job: cvc cluster-job submit RUN --method dec|idec|dcec';

/** A parsed, validated clustering method: an optional UMAP step, then k-means (optionally DEC-refined centres) or a Gaussian mixture. */
export interface ClusterMethod {
  readonly k: number;
  readonly nInit: number;
  readonly seed: number;
  /** UMAP before the assignment (undefined: cluster the codes themselves). */
  readonly umap?: Required<Pick<UmapOptions, 'dims' | 'neighbors' | 'minDist' | 'seed'>> & {
    readonly sample?: number;
    /** --umap-context: images of the dataset's other split that UMAP and the assignment also see (transductive). */
    readonly context?: number;
  };
  readonly assign: 'kmeans' | 'gmm';
  readonly covariance: Covariance;
  readonly decCentres: boolean;
}

/**
 * The clustering method from `cvc cluster`'s flags; a bad value or
 * combination is a UsageError naming the flag (checked before any work).
 */
export function clusterMethodFromFlags(values: Record<string, unknown>, k: number, nInit: number, seed: number): ClusterMethod {
  if (values['dec'] !== undefined) throw new UsageError(DEC_GONE);
  const manifold = choiceOpt(values, 'manifold', ['none', 'umap'] as const, 'none');
  const assign = choiceOpt(values, 'assign', ['kmeans', 'gmm'] as const, 'kmeans');
  const covariance = choiceOpt(values, 'covariance', ['full', 'diag'] as const, 'full');
  const decCentres = values['dec-centres'] === true;
  if (manifold !== 'umap')
    for (const f of ['umap-dims', 'neighbors', 'min-dist', 'umap-sample', 'umap-context'] as const)
      if (values[f] !== undefined) throw new UsageError(`--${f} applies to --manifold umap`);
  if (assign !== 'gmm' && values['covariance'] !== undefined) throw new UsageError('--covariance applies to --assign gmm');
  if (decCentres && assign === 'gmm') throw new UsageError('--dec-centres refines k-means centres; it does not combine with --assign gmm');
  const dims = intOpt(values, 'umap-dims', 10, positiveInt) as number;
  const neighbors = intOpt(values, 'neighbors', 20, positiveInt) as number;
  if (neighbors < 2) throw new UsageError(`--neighbors must be >= 2, got ${neighbors}`);
  const minDist = floatOpt(values, 'min-dist') ?? 0;
  if (minDist < 0 || minDist > 1) throw new UsageError(`--min-dist must be in 0..1, got ${minDist}`);
  const sample = intOpt(values, 'umap-sample', undefined, positiveInt);
  const context = intOpt(values, 'umap-context', undefined, positiveInt);
  return {
    k,
    nInit,
    seed,
    ...(manifold === 'umap'
      ? { umap: { dims, neighbors, minDist, seed, ...(sample !== undefined ? { sample } : {}), ...(context !== undefined ? { context } : {}) } }
      : {}),
    assign,
    covariance,
    decCentres,
  };
}

/** The result of one pipeline over one set of points. */
export interface ClusterOutcome {
  /** The method's name in the scores table: `encoder+umap+gmm`, `pixels+kmeans`, ... */
  readonly name: string;
  readonly labels: Int32Array;
  /** Per point: distance to its centre (k-means) or the probability / DEC confidence of its cluster. */
  readonly score: Float64Array | Float32Array;
  readonly scoreColumn: ScoreColumn;
  readonly seconds: number;
  /** Intermediate results worth scoring too (k-means before the DEC refinement). */
  readonly steps: readonly { readonly name: string; readonly labels: Int32Array; readonly seconds: number }[];
}

/** Runs `fit` with one progress bar on `stderr` (labelled `label`) that its onProgress drives; stopped when it ends. */
async function withBar<R>(stderr: ProgressStream, label: string, fit: (onProgress: (done: number, total: number) => void) => Promise<R>): Promise<R> {
  const bars = new Progress(stderr);
  try {
    return await fit((done, total) => bars.set('fit', { label, value: done, total }));
  } finally {
    bars.stop();
  }
}

/**
 * k-means behind a progress bar labelled `label`, stoppable by `signal`
 * between restarts (Ctrl-C during a minutes-long fit on raw pixels stops it
 * there).
 */
export function kmeansWithProgress(
  space: Points,
  opts: KMeansOptions,
  label: string,
  stderr: ProgressStream,
  signal: AbortSignal | undefined,
): Promise<KMeansResult> {
  return withBar(stderr, `${label}: k-means restarts`, (onProgress) => kmeansAsync(space, { ...opts, ...(signal ? { signal } : {}), onProgress }));
}

/**
 * A Gaussian mixture behind a progress bar (its steps: the k-means restarts
 * of the start, then EM iterations; the total is an upper bound, as EM may
 * converge early), stoppable by `signal` between steps.
 */
function gmmWithProgress(space: Points, opts: GmmOptions, label: string, stderr: ProgressStream, signal: AbortSignal | undefined): Promise<GmmModel> {
  return withBar(stderr, `${label}: mixture steps`, (onProgress) => gmmAsync(space, { ...opts, ...(signal ? { signal } : {}), onProgress }));
}

/** UMAP of `space` to `dims` dimensions with the method's other UMAP settings, behind a progress bar labelled `label`. */
async function umapWithProgress(
  space: Points,
  u: NonNullable<ClusterMethod['umap']>,
  dims: number,
  label: string,
  stderr: ProgressStream,
  signal: AbortSignal | undefined,
): Promise<Points> {
  const bars = new Progress(stderr);
  try {
    const { neighbors, minDist, seed, sample } = u;
    const r = await umapEmbed(space, {
      dims,
      neighbors,
      minDist,
      seed,
      ...(sample !== undefined ? { sample } : {}),
      ...(signal ? { signal } : {}),
      onProgress: (p) =>
        bars.set('umap', {
          label: `${label}: ${p.phase === 'neighbors' ? 'neighbour graph' : p.phase === 'layout' ? 'layout epochs' : 'transforming the rest'}`,
          value: p.done,
          total: p.total,
        }),
    });
    return r.embedding;
  } catch (err) {
    throw flagError(err, u, space.n);
  } finally {
    bars.stop();
  }
}

/** The library's refusal of too many neighbours for the fitted points, as the CLI's flags say it (exit 2); other errors as they are. */
function flagError(err: unknown, u: NonNullable<ClusterMethod['umap']>, n: number): unknown {
  if (!(err instanceof ClusteringError) || err.code !== 'TOO_FEW_POINTS' || err.field !== 'neighbors') return err;
  const fitted = Math.min(u.sample ?? n, n);
  const what = fitted < n ? `the --umap-sample of ${fitted}` : `${fitted} points (the images${u.context !== undefined ? ' and the --umap-context ones' : ''})`;
  // --neighbors is at least 2, so fewer than 3 fitted points cannot be mapped at all.
  const fix = fitted >= 3 ? `give --neighbors ${fitted - 1} or lower` : 'UMAP needs at least 3';
  return new UsageError(
    `--neighbors ${u.neighbors}: UMAP needs more fitted points than neighbours, got ${what}; ${fix}${fitted < n ? ', or a larger --umap-sample' : ''}`,
  );
}

/**
 * The report's 2-D map for a UMAP method: the points (and the same context
 * rows the clustering saw) embedded by UMAP to 2 dimensions with the
 * method's neighbours, min-dist, sample and seed; the first points.n rows
 * (x0, y0, x1, y1, ...) are returned.
 */
export async function umapMap(
  points: Points,
  m: ClusterMethod,
  stderr: ProgressStream,
  signal: AbortSignal | undefined,
  context?: Points,
): Promise<Float64Array> {
  if (!m.umap) throw new Error('umapMap: the method has no UMAP step');
  const space = context ? withContext(points, context, context.n, m.seed).points : points;
  const e = await umapWithProgress(space, m.umap, 2, 'report map: UMAP to 2-d', stderr, signal);
  return Float64Array.from(e.data.subarray(0, 2 * points.n));
}

/**
 * Clusters `points` with `m`: UMAP (with a progress bar on `stderr`) when
 * asked, then k-means (refined by DEC's centres-only step with
 * --dec-centres) or a Gaussian mixture. `source` prefixes the name.
 * With `context` (rows of the same kind for other images, --umap-context),
 * UMAP and the assignment run on `points` followed by `context`
 * (transductive, as N2D), and the outcome keeps only the rows of `points`.
 */
export async function runClusterMethod(
  source: 'encoder' | 'pixels',
  points: Points,
  m: ClusterMethod,
  stderr: ProgressStream,
  signal: AbortSignal | undefined,
  context?: Points,
): Promise<ClusterOutcome> {
  const t0 = performance.now();
  const secs = (): number => (performance.now() - t0) / 1000;
  const own = points.n;
  let space: Points = m.umap && context ? withContext(points, context, context.n, m.seed).points : points;
  let name: string = source;
  if (m.umap) {
    const label = `${source} UMAP to ${m.umap.dims}-d${space.n > own ? ` (+${space.n - own} context images)` : ''}`;
    space = await umapWithProgress(space, m.umap, m.umap.dims, label, stderr, signal);
    name += '+umap';
  }
  throwIfAborted(signal, 'cluster');
  if (m.assign === 'gmm') {
    // A full covariance over raw pixels (hundreds to thousands of dimensions) costs hours per fit: above 64 dimensions
    // the mixture is diagonal, and its name says so.
    const covariance = m.covariance === 'full' && space.d > FULL_COVARIANCE_MAX_DIMS ? 'diag' : m.covariance;
    if (covariance !== m.covariance) name += '+diag';
    const g = await gmmWithProgress(space, { k: m.k, seed: m.seed, covariance, kmeansNInit: m.nInit }, source, stderr, signal);
    const conf = new Float64Array(own);
    for (let i = 0; i < own; i++) conf[i] = g.probabilities[i * m.k + (g.labels[i] as number)] as number;
    return { name: `${name}+gmm`, labels: g.labels.slice(0, own), score: conf, scoreColumn: 'confidence', seconds: secs(), steps: [] };
  }
  const km = await kmeansWithProgress(space, { k: m.k, nInit: m.nInit, seed: m.seed }, name, stderr, signal);
  const ownSpace: Points = space.n > own ? { data: space.data.subarray(0, own * space.d), n: own, d: space.d } : space;
  if (!m.decCentres)
    return {
      name: `${name}+kmeans`,
      labels: km.labels.slice(0, own),
      score: distancesToCentres(ownSpace, km.centers, km.labels.subarray(0, own)),
      scoreColumn: 'distance',
      seconds: secs(),
      steps: [],
    };
  const steps = [{ name: `${name}+kmeans`, labels: km.labels.slice(0, own), seconds: secs() }];
  throwIfAborted(signal, 'cluster');
  const data = space.data instanceof Float32Array ? space.data : Float32Array.from(space.data);
  const dec = decRefine({ data, n: space.n, d: space.d }, km.centers, m.k);
  return {
    name: `${name}+dec-centres`,
    labels: dec.labels.slice(0, own),
    score: dec.confidence.slice(0, own),
    scoreColumn: 'confidence',
    seconds: secs(),
    steps,
  };
}
