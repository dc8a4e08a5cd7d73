/** Row-major points: `n` rows of `d` values. */
export interface Rows {
  readonly data: ArrayLike<number>;
  readonly n: number;
  readonly d: number;
}

/**
 * The points projected on their first two principal components: x0, y0, x1,
 * y1, ... (length 2n). Power iteration on the centred data (never the d x d
 * covariance, so raw pixels are fine), deterministic: fixed start, each axis'
 * sign chosen so its largest loading is positive.
 */
export function pca2d(p: Rows, maxIter = 300, tol = 1e-9): Float64Array {
  const { data, n, d } = p;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) + (data[i * d + j] as number) / n;
  const axes: Float64Array[] = [];
  const proj = new Float64Array(n);
  for (let a = 0; a < Math.min(2, d); a++) {
    let v = new Float64Array(d).map((_, j) => 1 + ((j * 7919 + a * 104729) % 97) / 97);
    for (let it = 0; it < maxIter; it++) {
      // w = X^T (X v), X centred, orthogonal to the axes found so far.
      for (const u of axes) orthogonalise(v, u);
      normalise(v);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += ((data[i * d + j] as number) - (mean[j] as number)) * (v[j] as number);
        proj[i] = s;
      }
      const w = new Float64Array(d);
      for (let i = 0; i < n; i++) {
        const s = proj[i] as number;
        for (let j = 0; j < d; j++) w[j] = (w[j] as number) + ((data[i * d + j] as number) - (mean[j] as number)) * s;
      }
      for (const u of axes) orthogonalise(w, u);
      if (normalise(w) === 0) break; // no variance left along any new axis
      let diff = 0;
      for (let j = 0; j < d; j++) diff += ((w[j] as number) - (v[j] as number)) ** 2;
      v = w;
      if (diff < tol) break;
    }
    let big = 0;
    for (let j = 0; j < d; j++) if (Math.abs(v[j] as number) > Math.abs(v[big] as number)) big = j;
    if ((v[big] as number) < 0) v = v.map((x) => -x);
    axes.push(v);
  }
  const out = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    axes.forEach((u, a) => {
      let s = 0;
      for (let j = 0; j < d; j++) s += ((data[i * d + j] as number) - (mean[j] as number)) * (u[j] as number);
      out[2 * i + a] = s;
    });
  }
  return out;
}

function orthogonalise(v: Float64Array, u: Float64Array): void {
  let dot = 0;
  for (let j = 0; j < v.length; j++) dot += (v[j] as number) * (u[j] as number);
  for (let j = 0; j < v.length; j++) v[j] = (v[j] as number) - dot * (u[j] as number);
}

function normalise(v: Float64Array): number {
  let s = 0;
  for (const x of v) s += x * x;
  const len = Math.sqrt(s);
  if (len > 0) for (let j = 0; j < v.length; j++) v[j] = (v[j] as number) / len;
  return len;
}
