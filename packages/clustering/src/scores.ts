/**
 * Clustering scores against known labels, as the deep-clustering literature
 * reports them: Hungarian-matched accuracy, NMI, ARI, and purity (the seed's).
 */

import { ClusteringError } from './errors.js';

/** Throws INVALID_POINTS naming `field` and the index of the first label that is not an integer (or, with `min` 0, is negative). */
function checkLabels(field: 'classes' | 'clusters', labels: ArrayLike<number>, min: number): void {
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i] as number;
    if (!Number.isInteger(v) || v < min)
      throw new ClusteringError('INVALID_POINTS', field, `label ${i} is ${v}; every label must be an integer${min === 0 ? ' >= 0' : ''}`);
  }
}

/** Checks both label lists (same length, at least one point, integers) for a score. */
function checkPair(classes: ArrayLike<number>, clusters: ArrayLike<number>): void {
  if (classes.length !== clusters.length) throw new RangeError(`${classes.length} labels but ${clusters.length} cluster assignments`);
  if (classes.length === 0) throw new ClusteringError('TOO_FEW_POINTS', 'classes', 'no points to score');
  checkLabels('classes', classes, -Infinity);
  checkLabels('clusters', clusters, -Infinity);
}

/** Each label as the rank of its value among the distinct values (0..m-1), and those values ascending. */
function compact(labels: ArrayLike<number>): { ids: Int32Array; values: number[] } {
  const values = [...new Set(Array.from(labels))].sort((a, b) => a - b);
  const index = new Map(values.map((v, i) => [v, i]));
  return { ids: Int32Array.from(Array.from(labels), (v) => index.get(v) as number), values };
}

/**
 * counts[cluster][class] over the labels' distinct values only: what the
 * scores use, so labels need not be 0..k-1 (a cluster id of 3000, or -1, makes
 * neither a 3001-row matrix nor a wrong count).
 */
function compactMatrix(classes: ArrayLike<number>, clusters: ArrayLike<number>): { m: number[][]; classValues: number[]; clusterValues: number[] } {
  checkPair(classes, clusters);
  const a = compact(classes);
  const b = compact(clusters);
  return { m: rawMatrix(a.ids, b.ids), classValues: a.values, clusterValues: b.values };
}

/**
 * counts[cluster][class], indexed by the labels themselves (a label absent
 * from the points gives a row or column of zeros). Throws ClusteringError
 * INVALID_POINTS naming the first label that is not an integer >= 0.
 */
export function confusionMatrix(classes: ArrayLike<number>, clusters: ArrayLike<number>): number[][] {
  if (classes.length !== clusters.length) throw new RangeError(`${classes.length} labels but ${clusters.length} cluster assignments`);
  checkLabels('classes', classes, 0);
  checkLabels('clusters', clusters, 0);
  return rawMatrix(classes, clusters);
}

function rawMatrix(classes: ArrayLike<number>, clusters: ArrayLike<number>): number[][] {
  let nc = 0;
  let nk = 0;
  for (let i = 0; i < classes.length; i++) {
    nc = Math.max(nc, (classes[i] as number) + 1);
    nk = Math.max(nk, (clusters[i] as number) + 1);
  }
  const m = Array.from({ length: nk }, () => new Array<number>(nc).fill(0));
  for (let i = 0; i < classes.length; i++) (m[clusters[i] as number] as number[])[classes[i] as number]! += 1;
  return m;
}

/**
 * Minimum-cost assignment of rows to columns (Hungarian algorithm, O(n^3)) on
 * a square cost matrix; returns the column of each row.
 */
export function hungarian(cost: number[][]): number[] {
  const n = cost.length;
  const u = new Array<number>(n + 1).fill(0);
  const v = new Array<number>(n + 1).fill(0);
  const p = new Array<number>(n + 1).fill(0);
  const way = new Array<number>(n + 1).fill(0);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    const minv = new Array<number>(n + 1).fill(Infinity);
    const used = new Array<boolean>(n + 1).fill(false);
    do {
      used[j0] = true;
      const i0 = p[j0] as number;
      let delta = Infinity;
      let j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const cur = (cost[i0 - 1]?.[j - 1] as number) - (u[i0] as number) - (v[j] as number);
        if (cur < (minv[j] as number)) {
          minv[j] = cur;
          way[j] = j0;
        }
        if ((minv[j] as number) < delta) {
          delta = minv[j] as number;
          j1 = j;
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j] as number] = (u[p[j] as number] as number) + delta;
          v[j] = (v[j] as number) - delta;
        } else minv[j] = (minv[j] as number) - delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0] as number;
      p[j0] = p[j1] as number;
      j0 = j1;
    } while (j0 !== 0);
  }
  const rowToCol = new Array<number>(n).fill(-1);
  for (let j = 1; j <= n; j++) if ((p[j] as number) > 0) rowToCol[(p[j] as number) - 1] = j - 1;
  return rowToCol;
}

/**
 * Accuracy under the best one-to-one mapping of clusters to classes.
 * `mapping[c]` is the class cluster `c` is matched to, for each cluster id
 * 0..max; a cluster matched to no class (more clusters than classes, or an id
 * no point has) gets a distinct value past the largest class.
 */
export function hungarianAccuracy(classes: ArrayLike<number>, clusters: ArrayLike<number>): { accuracy: number; mapping: number[] } {
  const { m, classValues, clusterValues } = compactMatrix(classes, clusters);
  const size = Math.max(m.length, m[0]?.length ?? 0);
  let max = 0;
  for (const row of m) for (const v of row) if (v > max) max = v;
  const cost = Array.from({ length: size }, (_, r) => Array.from({ length: size }, (_, c) => max - (m[r]?.[c] ?? 0)));
  const matched = hungarian(cost).slice(0, m.length);
  let correct = 0;
  matched.forEach((c, r) => (correct += m[r]?.[c] ?? 0));
  // The values are ascending: the last is the largest.
  const pastClasses = Math.max(-1, classValues[classValues.length - 1] as number) + 1;
  const top = Math.max(-1, clusterValues[clusterValues.length - 1] as number);
  const mapping = new Array<number>(top + 1).fill(-1);
  matched.forEach((c, r) => {
    const id = clusterValues[r] as number;
    if (id >= 0 && c < classValues.length) mapping[id] = classValues[c] as number;
  });
  let spare = pastClasses;
  for (let id = 0; id <= top; id++) if (mapping[id] === -1) mapping[id] = spare++;
  return { accuracy: correct / classes.length, mapping };
}

/** Fraction of points whose cluster's majority class is their class (many-to-one). */
export function purity(classes: ArrayLike<number>, clusters: ArrayLike<number>): number {
  const { m } = compactMatrix(classes, clusters);
  return m.reduce((s, row) => s + Math.max(0, ...row), 0) / classes.length;
}

const entropy = (counts: number[], n: number): number => counts.reduce((h, c) => (c > 0 ? h - (c / n) * Math.log(c / n) : h), 0);

/** Normalised mutual information with the arithmetic mean of the entropies (scikit-learn's default). */
export function nmi(classes: ArrayLike<number>, clusters: ArrayLike<number>): number {
  const { m } = compactMatrix(classes, clusters);
  const n = classes.length;
  const rows = m.map((r) => r.reduce((a, b) => a + b, 0));
  const cols = (m[0] ?? []).map((_, c) => m.reduce((s, r) => s + (r[c] ?? 0), 0));
  let mi = 0;
  m.forEach((r, i) =>
    r.forEach((c, j) => {
      if (c > 0) mi += (c / n) * Math.log((c * n) / ((rows[i] as number) * (cols[j] as number)));
    }),
  );
  const hu = entropy(rows, n);
  const hv = entropy(cols, n);
  if (hu === 0 && hv === 0) return 1;
  const denom = (hu + hv) / 2;
  return denom === 0 ? 0 : Math.max(0, mi) / denom;
}

/** Adjusted Rand index. */
export function ari(classes: ArrayLike<number>, clusters: ArrayLike<number>): number {
  const { m } = compactMatrix(classes, clusters);
  const n = classes.length;
  // One point: no pairs to compare; scikit-learn calls it a perfect match (rather than 0 / 0).
  if (n === 1) return 1;
  const c2 = (x: number): number => (x * (x - 1)) / 2;
  const rows = m.map((r) => r.reduce((a, b) => a + b, 0));
  const cols = (m[0] ?? []).map((_, c) => m.reduce((s, r) => s + (r[c] ?? 0), 0));
  const index = m.flat().reduce((s, x) => s + c2(x), 0);
  const a = rows.reduce((s, x) => s + c2(x), 0);
  const b = cols.reduce((s, x) => s + c2(x), 0);
  const expected = (a * b) / c2(n);
  const maxIndex = (a + b) / 2;
  if (maxIndex === expected) return 1;
  return (index - expected) / (maxIndex - expected);
}

/** All four scores. */
export function scoreClustering(classes: ArrayLike<number>, clusters: ArrayLike<number>): { accuracy: number; nmi: number; ari: number; purity: number } {
  return {
    accuracy: hungarianAccuracy(classes, clusters).accuracy,
    nmi: nmi(classes, clusters),
    ari: ari(classes, clusters),
    purity: purity(classes, clusters),
  };
}
