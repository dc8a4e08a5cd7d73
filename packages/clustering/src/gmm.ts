import { createRng } from '@cvc/core';
import { ClusteringError, checkInt, checkNumber, checkPoints } from './errors.js';
import { kmeansSteps, type KMeansResult, type Points } from './kmeans.js';
import { drain, runSteps, type StepOptions, type Steps } from './steps.js';

/**
 * A Gaussian mixture fitted by expectation-maximisation. Our own code: no
 * maintained JavaScript library fits one (ml.js has none, and the small
 * `gaussian-mixture` packages are unmaintained 1-d toys). It follows
 * scikit-learn's GaussianMixture: k-means (or k-means++ seeding only)
 * initialisation, `regCovar` added to the diagonal, stop when the mean
 * log-likelihood per point changes by less than `tol`.
 */
export type Covariance = 'diag' | 'full';

export interface GmmOptions {
  readonly k: number;
  /** Seeds the initialisation (default 0): the same seed gives the same mixture. */
  readonly seed?: number;
  /** 'full' (default): one d x d covariance per component; 'diag': per-feature variances. */
  readonly covariance?: Covariance;
  /** 'kmeans' (default): responsibilities from a full k-means run; 'kmeans++': from k-means++ seeding alone. */
  readonly init?: 'kmeans' | 'kmeans++';
  /** k-means restarts inside each 'kmeans' initialisation (default 1; see KMeansOptions.nInit). */
  readonly kmeansNInit?: number;
  /** EM runs from different seeds; the highest log-likelihood wins (default 1). */
  readonly nInit?: number;
  /** EM iterations per run (default 100). */
  readonly maxIter?: number;
  /** Stop when the mean log-likelihood per point changes less than this (default 1e-3). */
  readonly tol?: number;
  /** Added to every variance, keeping covariances positive definite (default 1e-6). */
  readonly regCovar?: number;
}

/** A fitted mixture: parameters, the training points' assignments, and predict for new points. */
export interface GmmModel {
  readonly k: number;
  readonly d: number;
  readonly covariance: Covariance;
  /** Mixing weights, k values summing to 1. */
  readonly weights: Float64Array;
  /** k x d means, row-major. */
  readonly means: Float64Array;
  /** k x d variances ('diag') or k x d x d covariances ('full'), row-major. */
  readonly covariances: Float64Array;
  /** Most probable component of each training point. */
  readonly labels: Int32Array;
  /** n x k posterior probabilities of the training points (each row sums to 1). */
  readonly probabilities: Float64Array;
  /** Mean log-likelihood per training point at the end. */
  readonly logLikelihood: number;
  readonly iterations: number;
  /** Whether the log-likelihood change fell below `tol` before `maxIter`. */
  readonly converged: boolean;
  /** The most probable component of each of `points`. */
  predict(points: Points): Int32Array;
  /** n x k posterior probabilities of `points`. */
  predictProba(points: Points): Float64Array;
}

const LOG_2PI = Math.log(2 * Math.PI);

/** Per component: what the E-step needs (precision factors and log-determinants). */
interface Prepared {
  /** diag: 1/variance (k x d); full: lower Cholesky factors (k x d x d). */
  readonly factor: Float64Array;
  readonly logDet: Float64Array;
}

/**
 * The error for a fit whose arithmetic overflowed: the points are finite (checked first), so a non-finite
 * covariance or likelihood means their squares went past float64's range, not a singular covariance.
 */
type Overflow = (what: string) => ClusteringError;

function overflowError(data: Float64Array): Overflow {
  let max = 0;
  for (const v of data) max = Math.max(max, Math.abs(v));
  return (what) =>
    new ClusteringError(
      'INVALID_POINTS',
      'points',
      `values up to ${max.toExponential(2)} are too large: ${what} (their squares overflow float64); scale the points (e.g. standardise the codes) before fitting a mixture`,
    );
}

function prepare(cov: Float64Array, k: number, d: number, kind: Covariance, overflow: Overflow): Prepared {
  for (let i = 0; i < cov.length; i++) {
    const v = cov[i] as number;
    if (!Number.isFinite(v)) throw overflow(`component ${Math.floor(i / (kind === 'diag' ? d : d * d))}'s covariance became ${v}`);
  }
  const logDet = new Float64Array(k);
  if (kind === 'diag') {
    const factor = new Float64Array(k * d);
    for (let i = 0; i < k * d; i++) {
      const v = cov[i] as number;
      if (!(v > 0)) throw new ClusteringError('SINGULAR_COVARIANCE', 'gmm', `component ${Math.floor(i / d)} has variance ${v}; raise regCovar`);
      factor[i] = 1 / v;
      logDet[Math.floor(i / d)] = (logDet[Math.floor(i / d)] as number) + Math.log(v);
    }
    return { factor, logDet };
  }
  const factor = new Float64Array(k * d * d);
  for (let c = 0; c < k; c++) {
    const o = c * d * d;
    // Cholesky: cov = L L^T, L lower triangular.
    for (let i = 0; i < d; i++) {
      for (let j = 0; j <= i; j++) {
        let s = cov[o + i * d + j] as number;
        for (let t = 0; t < j; t++) s -= (factor[o + i * d + t] as number) * (factor[o + j * d + t] as number);
        if (i === j) {
          if (!(s > 0))
            throw new ClusteringError(
              'SINGULAR_COVARIANCE',
              'gmm',
              `component ${c}'s covariance is not positive definite; raise regCovar or use covariance 'diag'`,
            );
          factor[o + i * d + i] = Math.sqrt(s);
          logDet[c] = (logDet[c] as number) + 2 * Math.log(Math.sqrt(s));
        } else factor[o + i * d + j] = s / (factor[o + j * d + j] as number);
      }
    }
  }
  return { factor, logDet };
}

/**
 * E-step: writes the posterior of each component into `resp` (n x k) and
 * returns the mean log-likelihood per point (log-sum-exp for stability).
 */
function expectation(
  data: Float64Array,
  n: number,
  d: number,
  k: number,
  kind: Covariance,
  weights: Float64Array,
  means: Float64Array,
  prep: Prepared,
  resp: Float64Array,
  overflow: Overflow,
): number {
  const logW = Float64Array.from(weights, (w) => Math.log(w));
  const y = new Float64Array(d);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const xo = i * d;
    let max = -Infinity;
    for (let c = 0; c < k; c++) {
      const mo = c * d;
      let maha = 0;
      if (kind === 'diag') {
        for (let j = 0; j < d; j++) {
          const t = (data[xo + j] as number) - (means[mo + j] as number);
          maha += t * t * (prep.factor[mo + j] as number);
        }
      } else {
        // Solve L y = x - mu; the Mahalanobis distance is |y|^2.
        const lo = c * d * d;
        for (let j = 0; j < d; j++) {
          let s = (data[xo + j] as number) - (means[mo + j] as number);
          for (let t = 0; t < j; t++) s -= (prep.factor[lo + j * d + t] as number) * (y[t] as number);
          const v = s / (prep.factor[lo + j * d + j] as number);
          y[j] = v;
          maha += v * v;
        }
      }
      const l = (logW[c] as number) - 0.5 * (d * LOG_2PI + (prep.logDet[c] as number) + maha);
      resp[i * k + c] = l;
      if (l > max) max = l;
    }
    let s = 0;
    for (let c = 0; c < k; c++) s += Math.exp((resp[i * k + c] as number) - max);
    const lse = max + Math.log(s);
    if (!Number.isFinite(lse)) throw overflow(`the log-likelihood of point ${i} (${lse})`);
    total += lse;
    for (let c = 0; c < k; c++) resp[i * k + c] = Math.exp((resp[i * k + c] as number) - lse);
  }
  return total / n;
}

/** M-step: weights, means and covariances from the responsibilities. */
function maximisation(data: Float64Array, n: number, d: number, k: number, kind: Covariance, reg: number, resp: Float64Array) {
  const nk = new Float64Array(k);
  const means = new Float64Array(k * d);
  for (let i = 0; i < n; i++)
    for (let c = 0; c < k; c++) {
      const r = resp[i * k + c] as number;
      if (r === 0) continue;
      nk[c] = (nk[c] as number) + r;
      for (let j = 0; j < d; j++) means[c * d + j] = (means[c * d + j] as number) + r * (data[i * d + j] as number);
    }
  // scikit-learn's 10 x machine epsilon keeps an emptied component finite.
  for (let c = 0; c < k; c++) nk[c] = (nk[c] as number) + 10 * Number.EPSILON;
  for (let c = 0; c < k; c++) for (let j = 0; j < d; j++) means[c * d + j] = (means[c * d + j] as number) / (nk[c] as number);
  const covariances = new Float64Array(kind === 'diag' ? k * d : k * d * d);
  const diff = new Float64Array(d);
  for (let i = 0; i < n; i++)
    for (let c = 0; c < k; c++) {
      const r = resp[i * k + c] as number;
      if (r === 0) continue;
      for (let j = 0; j < d; j++) diff[j] = (data[i * d + j] as number) - (means[c * d + j] as number);
      if (kind === 'diag') for (let j = 0; j < d; j++) covariances[c * d + j] = (covariances[c * d + j] as number) + r * (diff[j] as number) ** 2;
      else {
        const o = c * d * d;
        for (let a = 0; a < d; a++) {
          const ra = r * (diff[a] as number);
          for (let b = 0; b <= a; b++) covariances[o + a * d + b] = (covariances[o + a * d + b] as number) + ra * (diff[b] as number);
        }
      }
    }
  for (let c = 0; c < k; c++) {
    const m = nk[c] as number;
    if (kind === 'diag') for (let j = 0; j < d; j++) covariances[c * d + j] = (covariances[c * d + j] as number) / m + reg;
    else {
      const o = c * d * d;
      for (let a = 0; a < d; a++)
        for (let b = 0; b <= a; b++) {
          const v = (covariances[o + a * d + b] as number) / m + (a === b ? reg : 0);
          covariances[o + a * d + b] = v;
          covariances[o + b * d + a] = v;
        }
    }
  }
  const weights = Float64Array.from(nk, (v) => v / n);
  return { weights, means, covariances };
}

const as64 = (p: Points): Float64Array => (p.data instanceof Float64Array ? p.data : Float64Array.from(p.data));

function argmaxRows(resp: Float64Array, n: number, k: number): Int32Array {
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let b = 0;
    for (let c = 1; c < k; c++) if ((resp[i * k + c] as number) > (resp[i * k + b] as number)) b = c;
    labels[i] = b;
  }
  return labels;
}

/**
 * Fits a Gaussian mixture of `k` components to `points` by EM, seeded and
 * reproducible. Throws ClusteringError for a bad option, non-finite points,
 * fewer points than components, or a covariance that stays singular.
 */
export function gmm(points: Points, opts: GmmOptions): GmmModel {
  return drain(gmmSteps(points, opts));
}

/**
 * gmm, giving the event loop a turn after each k-means restart of the
 * initialisation and each EM iteration: `signal` can stop it between them
 * (CancelledError) and `onProgress` hears (steps done, steps at most). The
 * same mixture as gmm for the same options.
 */
export function gmmAsync(points: Points, opts: GmmOptions & StepOptions): Promise<GmmModel> {
  const init = opts.init === 'kmeans++' ? 1 : (opts.kmeansNInit ?? 1);
  return runSteps(gmmSteps(points, opts), (opts.nInit ?? 1) * (init + (opts.maxIter ?? 100)), 'Gaussian mixture', opts);
}

/** gmm as steps: yields after each k-means restart and each EM iteration (steps done). */
export function* gmmSteps(points: Points, opts: GmmOptions): Steps<GmmModel> {
  checkPoints('points', points);
  const { n, d } = points;
  checkInt('k', opts.k, 1);
  if (opts.k > n) throw new ClusteringError('TOO_FEW_POINTS', 'k', `${opts.k} components need at least ${opts.k} points, got ${n}`);
  const k = opts.k;
  const kind = opts.covariance ?? 'full';
  if (kind !== 'diag' && kind !== 'full') throw new ClusteringError('INVALID_OPTION', 'covariance', `must be 'diag' or 'full', got '${String(kind)}'`);
  const init = opts.init ?? 'kmeans';
  if (init !== 'kmeans' && init !== 'kmeans++') throw new ClusteringError('INVALID_OPTION', 'init', `must be 'kmeans' or 'kmeans++', got '${String(init)}'`);
  const nInit = opts.nInit ?? 1;
  checkInt('nInit', nInit, 1);
  const kmeansNInit = opts.kmeansNInit ?? 1;
  checkInt('kmeansNInit', kmeansNInit, 1);
  const maxIter = opts.maxIter ?? 100;
  checkInt('maxIter', maxIter, 1);
  const tol = opts.tol ?? 1e-3;
  checkNumber('tol', tol, 0);
  const reg = opts.regCovar ?? 1e-6;
  checkNumber('regCovar', reg, 0);
  const data = as64(points);
  const overflow = overflowError(data);
  const rng = createRng(opts.seed ?? 0);
  let best: Omit<GmmModel, 'predict' | 'predictProba'> | undefined;
  let done = 0;
  for (let r = 0; r < nInit; r++) {
    const kmSteps = kmeansSteps(
      { data, n, d },
      init === 'kmeans++' ? { k, nInit: 1, maxIter: 0, seed: rng.int(0x7fffffff) } : { k, nInit: kmeansNInit, seed: rng.int(0x7fffffff) },
    );
    let km: KMeansResult | undefined;
    while (km === undefined) {
      const s = kmSteps.next();
      if (s.done) km = s.value;
      else yield ++done;
    }
    const resp = new Float64Array(n * k);
    for (let i = 0; i < n; i++) resp[i * k + (km.labels[i] as number)] = 1;
    let params = maximisation(data, n, d, k, kind, reg, resp);
    let ll = -Infinity;
    let iterations = 0;
    let converged = false;
    for (let it = 0; it < maxIter; it++) {
      iterations = it + 1;
      const prev = ll;
      ll = expectation(data, n, d, k, kind, params.weights, params.means, prepare(params.covariances, k, d, kind, overflow), resp, overflow);
      if (Math.abs(ll - prev) < tol) {
        converged = true;
        break;
      }
      params = maximisation(data, n, d, k, kind, reg, resp);
      yield ++done;
    }
    if (!converged) ll = expectation(data, n, d, k, kind, params.weights, params.means, prepare(params.covariances, k, d, kind, overflow), resp, overflow);
    if (!best || ll > best.logLikelihood)
      best = { k, d, covariance: kind, ...params, labels: argmaxRows(resp, n, k), probabilities: resp, logLikelihood: ll, iterations, converged };
  }
  const fit = best as Omit<GmmModel, 'predict' | 'predictProba'>;
  const prep = prepare(fit.covariances, k, d, kind, overflow);
  const predictProba = (p: Points): Float64Array => {
    checkPoints('points', p);
    if (p.d !== d) throw new ClusteringError('INVALID_POINTS', 'points', `the mixture was fitted on ${d}-d points, got ${p.d}-d`);
    const resp = new Float64Array(p.n * k);
    const x = as64(p);
    expectation(x, p.n, d, k, kind, fit.weights, fit.means, prep, resp, overflowError(x));
    return resp;
  };
  return { ...fit, predictProba, predict: (p: Points) => argmaxRows(predictProba(p), p.n, k) };
}
