// cvc's k-means kernels: WebAssembly SIMD (f64x2), built by scripts/build-wasm.sh
// into packages/clustering/wasm/cvc-kmeans.wasm. The module imports its memory
// from JavaScript (src/kmeans-wasm.ts lays out the buffers), has no data segment
// and no stack, and writes only the output buffers it is given.
//
// Points are row-major n x d float64; centers k x d float64.
//
// Both phases skip, by the triangle inequality, the distances that cannot
// matter, and give the results of the plain computation: a center c cannot be
// nearer to x than x's own center a when |c - a| >= 2 |x - a|. The skip tests
// carry a relative margin (SKIP) far above the rounding error of the distances,
// so a skipped distance is never one that the plain computation would have
// found smaller (or equal: ties go to the lower center index, as in a plain
// scan).

#include <wasm_simd128.h>

typedef double f64;

#define EXPORT(name) __attribute__((export_name(#name)))

/** Relative margin of the skip tests (squared distances): far above float64 rounding. */
#define SKIP (1 + 1e-9)

/** Squared Euclidean distance of two d-vectors (two f64x2 accumulators). */
static inline f64 dist2(const f64 *a, const f64 *b, int d) {
  v128_t acc0 = wasm_f64x2_splat(0.0);
  v128_t acc1 = wasm_f64x2_splat(0.0);
  int j = 0;
  for (; j + 4 <= d; j += 4) {
    v128_t t0 = wasm_f64x2_sub(wasm_v128_load(a + j), wasm_v128_load(b + j));
    v128_t t1 = wasm_f64x2_sub(wasm_v128_load(a + j + 2), wasm_v128_load(b + j + 2));
    acc0 = wasm_f64x2_add(acc0, wasm_f64x2_mul(t0, t0));
    acc1 = wasm_f64x2_add(acc1, wasm_f64x2_mul(t1, t1));
  }
  if (j + 2 <= d) {
    v128_t t0 = wasm_f64x2_sub(wasm_v128_load(a + j), wasm_v128_load(b + j));
    acc0 = wasm_f64x2_add(acc0, wasm_f64x2_mul(t0, t0));
    j += 2;
  }
  v128_t acc = wasm_f64x2_add(acc0, acc1);
  f64 s = wasm_f64x2_extract_lane(acc, 0) + wasm_f64x2_extract_lane(acc, 1);
  if (j < d) {
    f64 t = a[j] - b[j];
    s += t * t;
  }
  return s;
}

/**
 * Squared distances from x (d values) to kp centers stored transposed
 * (ct[j * kp + c], kp even): out[c] for c < kp. Vectorised across the
 * centers, each lane summing over j in order.
 */
static void dists_t(const f64 *x, const f64 *ct, int d, int kp, f64 *out) {
  int c = 0;
  for (; c + 8 <= kp; c += 8) {
    v128_t a0 = wasm_f64x2_splat(0.0), a1 = a0, a2 = a0, a3 = a0;
    const f64 *col = ct + c;
    for (int j = 0; j < d; j++, col += kp) {
      v128_t xj = wasm_f64x2_splat(x[j]);
      v128_t t0 = wasm_f64x2_sub(xj, wasm_v128_load(col));
      v128_t t1 = wasm_f64x2_sub(xj, wasm_v128_load(col + 2));
      v128_t t2 = wasm_f64x2_sub(xj, wasm_v128_load(col + 4));
      v128_t t3 = wasm_f64x2_sub(xj, wasm_v128_load(col + 6));
      a0 = wasm_f64x2_add(a0, wasm_f64x2_mul(t0, t0));
      a1 = wasm_f64x2_add(a1, wasm_f64x2_mul(t1, t1));
      a2 = wasm_f64x2_add(a2, wasm_f64x2_mul(t2, t2));
      a3 = wasm_f64x2_add(a3, wasm_f64x2_mul(t3, t3));
    }
    wasm_v128_store(out + c, a0);
    wasm_v128_store(out + c + 2, a1);
    wasm_v128_store(out + c + 4, a2);
    wasm_v128_store(out + c + 6, a3);
  }
  for (; c < kp; c += 2) {
    v128_t a0 = wasm_f64x2_splat(0.0);
    const f64 *col = ct + c;
    for (int j = 0; j < d; j++, col += kp) {
      v128_t t0 = wasm_f64x2_sub(wasm_f64x2_splat(x[j]), wasm_v128_load(col));
      a0 = wasm_f64x2_add(a0, wasm_f64x2_mul(t0, t0));
    }
    wasm_v128_store(out + c, a0);
  }
}

/** ct[j * kp + c] = rows[c * d + j] for c < m, 0 in the padding lanes up to kp. */
static void transpose_rows(const f64 *rows, int m, int d, int kp, f64 *ct) {
  for (int j = 0; j < d; j++) {
    for (int c = 0; c < m; c++) ct[j * kp + c] = rows[c * d + j];
    for (int c = m; c < kp; c++) ct[j * kp + c] = 0;
  }
}

/** The squared distance between points `a` and `b` of the kernels (exported for tests). */
EXPORT(kmeans_dist2)
f64 kmeans_dist2(const f64 *a, const f64 *b, int d) { return dist2(a, b, d); }

static inline f64 fsqrt(f64 v) { return __builtin_sqrt(v); }
static inline f64 fmin2(f64 a, f64 b) { return a < b ? a : b; }

/**
 * Starts k-means++ from seed 0 (`c`): closest[i] = |x_i - c|^2, labels[i] = 0
 * (the index of the nearest seed) and lower[i] = +inf (a lower bound on the
 * distance to the nearest other seed). Returns the sum of closest (index order).
 */
EXPORT(kpp_first)
f64 kpp_first(const f64 *x, int n, int d, const f64 *c, f64 *closest, int *labels, f64 *lower) {
  f64 pot = 0;
  for (int i = 0; i < n; i++) {
    f64 v = dist2(x + (long)i * d, c, d);
    closest[i] = v;
    labels[i] = 0;
    lower[i] = __builtin_inf();
    pot += v;
  }
  return pot;
}

/**
 * The index sampled with probability closest[i] / sum: the first i where the
 * running remainder of r (uniform in [0, sum)) drops to 0 or below; n - 1 at most.
 */
EXPORT(kpp_sample)
int kpp_sample(const f64 *closest, int n, f64 r) {
  int i = 0;
  for (; i < n - 1; i++) {
    r -= closest[i];
    if (r <= 0) break;
  }
  return i;
}

/**
 * For each of the t candidate seeds (t x d), the potential it would leave
 * with the `m` seeds chosen so far (centers, m x d):
 * pots[c] = sum_i min(closest[i], |x_i - cand_c|^2), in index order. A point
 * whose nearest seed s has |cand - s| >= 2 sqrt(closest[i]) for every
 * candidate keeps closest[i] without computing distances (a distance known to
 * be at least closest[i] changes nothing in the min). tv (t x n) receives
 * each distance for kpp_update, +inf where it was skipped. `q` is scratch for
 * t x m + (d + 1) x (t + 1) values.
 */
EXPORT(kpp_trials)
void kpp_trials(const f64 *x, int n, int d, const f64 *closest, const int *labels, const f64 *centers, int m, const f64 *cands, int t, f64 *pots,
                f64 *q, f64 *tv) {
  int tp = (t + 1) & ~1;
  f64 *ct = q + t * m;
  f64 *dv = ct + d * tp;
  for (int c = 0; c < t; c++) {
    pots[c] = 0;
    for (int s = 0; s < m; s++) q[s * t + c] = dist2(cands + c * d, centers + s * d, d) / 4;
  }
  transpose_rows(cands, t, d, tp, ct);
  for (int i = 0; i < n; i++) {
    f64 ci = closest[i];
    f64 lim = ci * SKIP;
    const f64 *qs = q + labels[i] * t;
    int all = 1;
    for (int c = 0; c < t; c++) all &= qs[c] >= lim;
    if (all) {
      for (int c = 0; c < t; c++) {
        pots[c] += ci;
        tv[(long)c * n + i] = __builtin_inf();
      }
      continue;
    }
    dists_t(x + (long)i * d, ct, d, tp, dv);
    for (int c = 0; c < t; c++) {
      pots[c] += fmin2(dv[c], ci);
      tv[(long)c * n + i] = dv[c];
    }
  }
}

/**
 * Adds seed m (row m of centers, after the m seeds before it), the candidate
 * whose distances kpp_trials left in v (n values, +inf where skipped):
 * closest[i] = min(closest[i], |x_i - c_m|^2), labels[i] its index (the lower
 * one of equals) and lower[i] a lower bound on the distance to the nearest seed
 * other than labels[i]. Returns the new sum of closest (index order). `q` is
 * scratch for 2m values.
 */
EXPORT(kpp_update)
f64 kpp_update(int n, int d, f64 *closest, int *labels, f64 *lower, const f64 *centers, int m, const f64 *v, f64 *q) {
  const f64 *c = centers + m * d;
  f64 *dq = q + m;
  for (int s = 0; s < m; s++) dq[s] = fsqrt(dist2(c, centers + s * d, d));
  f64 pot = 0;
  for (int i = 0; i < n; i++) {
    f64 ci = closest[i];
    f64 vi = v[i];
    if (vi == __builtin_inf()) {
      // Skipped: |c_m - s| >= 2 |x - s| for x's nearest seed s, and |x - c_m| >= |c_m - s| - |x - s|.
      lower[i] = fmin2(lower[i], dq[labels[i]] - fsqrt(ci));
      pot += ci;
    } else if (vi < ci) {
      // Every other seed is at least as far as the old nearest one.
      lower[i] = fsqrt(ci);
      closest[i] = vi;
      labels[i] = m;
      pot += vi;
    } else {
      lower[i] = fmin2(lower[i], fsqrt(vi));
      pot += ci;
    }
  }
  return pot;
}

/** How many float64 scratch values lloyd needs: 2kd + 3k + k^2 + (d + 1)(k + 1). */
EXPORT(lloyd_scratch_values)
int lloyd_scratch_values(int n, int d, int k) { return 2 * k * d + 3 * k + k * k + (d + 1) * (k + 1); }

/**
 * One Lloyd run from `centers` (k x d, updated in place) and the assignment
 * k-means++ left: labels (the nearest center of each point), upper (in:
 * the squared distance to it; out: an upper bound on the distance) and lower
 * (a lower bound on the distance to the nearest other center). Hamerly's
 * bounds skip the points whose assignment cannot change (a point that may
 * change gets all k distances, vectorised across the centers), so the labels
 * are those of plain Lloyd. Stops after max_iter center moves or when
 * the centers moved by tol_abs (sum of squared shifts) or less. `ws` holds
 * lloyd_scratch_values(n, d, k) float64s. Returns the number of iterations.
 */
EXPORT(lloyd)
int lloyd(const f64 *x, int n, int d, f64 *centers, int k, int max_iter, f64 tol_abs, int *labels, f64 *upper, f64 *lower, f64 *ws) {
  f64 *sums = ws;
  f64 *old = sums + k * d;
  f64 *counts = old + k * d;
  f64 *half = counts + k;
  f64 *shift = half + k;
  f64 *cc = shift + k;
  int kp = (k + 1) & ~1;
  f64 *ct = cc + k * k;
  f64 *dv = ct + d * kp;
  for (int i = 0; i < k * d; i++) sums[i] = 0;
  for (int c = 0; c < k; c++) counts[c] = 0;
  for (int i = 0; i < n; i++) {
    const f64 *xi = x + (long)i * d;
    int b = labels[i];
    upper[i] = fsqrt(upper[i]);
    counts[b] += 1;
    f64 *sb = sums + b * d;
    for (int j = 0; j < d; j++) sb[j] += xi[j];
  }
  int iterations = 0;
  for (int it = 0; it < max_iter; it++) {
    iterations = it + 1;
    // Move the centers to their means; an empty cluster keeps its center.
    for (int i = 0; i < k * d; i++) old[i] = centers[i];
    f64 total = 0;
    f64 max_shift = 0;
    f64 second_shift = 0;
    int max_c = -1;
    for (int c = 0; c < k; c++) {
      f64 m = counts[c];
      f64 s2 = 0;
      if (m > 0) {
        for (int j = 0; j < d; j++) {
          f64 v = sums[c * d + j] / m;
          f64 t = v - old[c * d + j];
          s2 += t * t;
          centers[c * d + j] = v;
        }
      }
      total += s2;
      f64 sh = fsqrt(s2);
      shift[c] = sh;
      if (sh > max_shift) {
        second_shift = max_shift;
        max_shift = sh;
        max_c = c;
      } else if (sh > second_shift) {
        second_shift = sh;
      }
    }
    if (total <= tol_abs) break;
    transpose_rows(centers, k, d, kp, ct);
    // Center-to-center distances, and half the distance to each center's nearest other one.
    for (int c = 0; c < k; c++) {
      cc[c * k + c] = 0;
      for (int c2 = 0; c2 < c; c2++) {
        f64 v = fsqrt(dist2(centers + c * d, centers + c2 * d, d));
        cc[c * k + c2] = v;
        cc[c2 * k + c] = v;
      }
    }
    for (int c = 0; c < k; c++) {
      f64 m = __builtin_inf();
      for (int c2 = 0; c2 < k; c2++)
        if (c2 != c) m = fmin2(m, cc[c * k + c2]);
      half[c] = m / 2;
    }
    for (int i = 0; i < n; i++) {
      int a = labels[i];
      f64 up = upper[i] + shift[a];
      f64 lo = lower[i] - (a == max_c ? second_shift : max_shift);
      lower[i] = lo;
      f64 bound = half[a] > lo ? half[a] : lo;
      // Strictly inside the bound (with the margin): no other center is as near, not even tied.
      if (up * SKIP < bound) {
        upper[i] = up;
        continue;
      }
      const f64 *xi = x + (long)i * d;
      f64 da2 = dist2(xi, centers + a * d, d);
      f64 u = fsqrt(da2);
      upper[i] = u;
      if (u * SKIP < bound) continue;
      // All distances at once (vectorised across the centers); the nearest (first of equals) and the second.
      dists_t(xi, ct, d, kp, dv);
      int b = 0;
      f64 d1 = __builtin_inf();
      f64 d2 = __builtin_inf();
      for (int c = 0; c < k; c++) {
        f64 v = dv[c];
        if (v < d1) {
          d2 = d1;
          d1 = v;
          b = c;
        } else if (v < d2) {
          d2 = v;
        }
      }
      upper[i] = fsqrt(d1);
      lower[i] = fsqrt(d2);
      if (b != a) {
        labels[i] = b;
        counts[a] -= 1;
        counts[b] += 1;
        f64 *sa = sums + a * d;
        f64 *sb = sums + b * d;
        for (int j = 0; j < d; j++) {
          sa[j] -= xi[j];
          sb[j] += xi[j];
        }
      }
    }
  }
  return iterations;
}

/** Sum over the points of the squared distance to their labelled center (index order). */
EXPORT(inertia)
f64 inertia(const f64 *x, int n, int d, const f64 *centers, const int *labels) {
  f64 s = 0;
  for (int i = 0; i < n; i++) s += dist2(x + (long)i * d, centers + labels[i] * d, d);
  return s;
}
