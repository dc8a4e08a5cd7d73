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

/** Throws INVALID_POINTS unless there is one cluster assignment per label. */
function checkSameLength(classes: ArrayLike<number>, clusters: ArrayLike<number>): void {
  if (classes.length !== clusters.length)
    throw new ClusteringError('INVALID_POINTS', 'clusters', `${clusters.length} cluster assignments for ${classes.length} labels; give one per point`);
}

/** Checks both label lists (same length, at least one point, integers) for a score. */
function checkPair(classes: ArrayLike<number>, clusters: ArrayLike<number>): void {
  checkSameLength(classes, clusters);
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
  checkSameLength(classes, clusters);
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
 * Minimum-cost assignment on an r x c cost matrix (the Hungarian algorithm
 * with potentials, run along the smaller side): min(r, c) rows get distinct
 * columns and the sum of their costs is the least possible. Returns the
 * column of each row, -1 for a row left without one (more rows than
 * columns). Time O(min(r,c)^2 x max(r,c)), memory O(r x c): 1000 clusters
 * against 10 classes is 10 passes over 1000 columns, not a padded
 * 1000 x 1000 problem. Throws ClusteringError for rows of unequal length
 * (INVALID_OPTION) or a cost that is not a finite number (INVALID_POINTS).
 */
export function hungarian(cost: readonly (readonly number[])[]): number[] {
  const rows = cost.length;
  const cols = cost[0]?.length ?? 0;
  // The algorithm runs over the smaller side as its rows: `a` is that orientation, row-major.
  const flip = rows > cols;
  const [n, m] = flip ? [cols, rows] : [rows, cols];
  const a = new Float64Array(n * m);
  cost.forEach((row, r) => {
    if (row.length !== cols) throw new ClusteringError('INVALID_OPTION', 'cost', `row ${r} has ${row.length} values, row 0 has ${cols}`);
    for (let c = 0; c < cols; c++) {
      const v = row[c] as number;
      if (!Number.isFinite(v)) throw new ClusteringError('INVALID_POINTS', 'cost', `row ${r} column ${c} is ${v}; every cost must be a finite number`);
      a[flip ? c * m + r : r * m + c] = v;
    }
  });
  const matched = assignRows(a, n, m);
  if (!flip) return matched;
  const rowToCol = new Array<number>(rows).fill(-1);
  matched.forEach((r, c) => (rowToCol[r] = c));
  return rowToCol;
}

/** The Hungarian algorithm for n <= m (e-maxx's form): each of the n rows of `a` (n x m, row-major) gets a distinct column; returns them. */
function assignRows(a: Float64Array, n: number, m: number): number[] {
  const u = new Float64Array(n + 1);
  const v = new Float64Array(m + 1);
  // p[j]: the row (1-based) holding column j; way[j]: the column before j on the augmenting path.
  const p = new Int32Array(m + 1);
  const way = new Int32Array(m + 1);
  const minv = new Float64Array(m + 1);
  const used = new Uint8Array(m + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    minv.fill(Infinity);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = p[j0] as number;
      const base = (i0 - 1) * m - 1;
      const ui = u[i0] as number;
      let delta = Infinity;
      let j1 = 0;
      for (let j = 1; j <= m; j++) {
        if (used[j]) continue;
        const cur = (a[base + j] as number) - ui - (v[j] as number);
        if (cur < (minv[j] as number)) {
          minv[j] = cur;
          way[j] = j0;
        }
        if ((minv[j] as number) < delta) {
          delta = minv[j] as number;
          j1 = j;
        }
      }
      for (let j = 0; j <= m; j++) {
        if (used[j]) {
          const r = p[j] as number;
          u[r] = (u[r] as number) + delta;
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
  for (let j = 1; j <= m; j++) if ((p[j] as number) > 0) rowToCol[(p[j] as number) - 1] = j - 1;
  return rowToCol;
}

/**
 * Accuracy under the best one-to-one mapping of clusters to classes.
 * `mapping[c]` is the class cluster `c` is matched to, for each cluster id
 * 0..max; a cluster matched to no class (more clusters than classes, or an id
 * no point has) gets a distinct value past the largest class. The matching
 * runs on the clusters x classes counts as they are (no square padding).
 */
export function hungarianAccuracy(classes: ArrayLike<number>, clusters: ArrayLike<number>): { accuracy: number; mapping: number[] } {
  const { m, classValues, clusterValues } = compactMatrix(classes, clusters);
  let max = 0;
  for (const row of m) for (const v of row) if (v > max) max = v;
  // As many pairs are matched whatever the matching (the smaller side): least (max - count) is most count.
  const matched = hungarian(m.map((row) => row.map((v) => max - v)));
  let correct = 0;
  matched.forEach((c, r) => (correct += c >= 0 ? (m[r]?.[c] ?? 0) : 0));
  // The values are ascending: the last is the largest.
  const pastClasses = Math.max(-1, classValues[classValues.length - 1] as number) + 1;
  const top = Math.max(-1, clusterValues[clusterValues.length - 1] as number);
  const mapping = new Array<number>(top + 1).fill(-1);
  matched.forEach((c, r) => {
    const id = clusterValues[r] as number;
    if (id >= 0 && c >= 0) mapping[id] = classValues[c] as number;
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
