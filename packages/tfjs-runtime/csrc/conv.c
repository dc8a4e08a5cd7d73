/*
 * cvc's convolution kernels for tfjs-backend-wasm, in WebAssembly SIMD.
 *
 * Built by scripts/build-wasm.sh into packages/tfjs-runtime/wasm/ twice: with
 * plain SIMD (multiply then add) and with relaxed SIMD (f32x4.relaxed_madd,
 * a fused multiply-add on CPUs that have one). The module imports
 * tfjs-backend-wasm's own memory, so it works on tensors in place; it has no
 * data segment and never touches the C stack (every value lives in a wasm
 * local), so it cannot overwrite anything that module owns. All buffers are
 * allocated by the caller with tfjs-backend-wasm's malloc.
 *
 * Layouts are NHWC, filters [KH][KW][Ci][Co]. The input is already padded
 * (xp: [N][Hp][Wp][Ci]). For a fixed filter row kh and output pixel, the
 * inputs a filter row touches, xp[..][ow*sw + kw][ci], are contiguous over
 * j = kw*Ci + ci, so each kernel loops over j in 0..J-1 with J = KW*Ci.
 *
 * The register tiles (MR pixels or filter taps by NV vectors of 4 channels)
 * are at most 4 x 2 = 8 accumulators, so with the operands they fit in the 15
 * SIMD registers V8 allocates on x86-64 without spilling; larger tiles were
 * measured slower.
 */
#include <wasm_simd128.h>


#ifdef CVC_RELAXED
#define MADD(a, b, c) __builtin_wasm_relaxed_madd_f32x4(a, b, c)
#else
#define MADD(a, b, c) wasm_f32x4_add(wasm_f32x4_mul(a, b), c)
#endif

#define INLINE static inline __attribute__((always_inline))
#define EXPORT(name) __attribute__((export_name(#name)))

/* ---------------------------------------------------------------------------
 * Forward: y[n][oh][ow][co] = sum_{kh,j} xp[n][oh*sh+kh][ow*sw*Ci + j] * w[kh][j][co]
 * MR output pixels x NV*4 output channels per tile. Needs Co % 4 == 0.
 */
INLINE void fwd_tile(const int MR, const int NV, const float* x, int ps, int xrow, const float* w, int KH, int J, int Co,
                     float* y) {
  v128_t acc[4][2];
  for (int p = 0; p < MR; p++)
    for (int v = 0; v < NV; v++) acc[p][v] = wasm_f32x4_splat(0.0f);
  for (int kh = 0; kh < KH; kh++) {
    const float* xr = x + kh * xrow;
    const float* wr = w + kh * J * Co;
    for (int j = 0; j < J; j++) {
      v128_t b[2];
      for (int v = 0; v < NV; v++) b[v] = wasm_v128_load(wr + j * Co + 4 * v);
      for (int p = 0; p < MR; p++) {
        v128_t a = wasm_v128_load32_splat(xr + p * ps + j);
        for (int v = 0; v < NV; v++) acc[p][v] = MADD(a, b[v], acc[p][v]);
      }
    }
  }
  for (int p = 0; p < MR; p++)
    for (int v = 0; v < NV; v++) wasm_v128_store(y + p * Co + 4 * v, acc[p][v]);
}

INLINE void fwd_row(const int NV, const float* x, int ps, int xrow, const float* w, int KH, int J, int Co, float* y, int OW) {
  int ow = 0;
  for (; ow + 4 <= OW; ow += 4) fwd_tile(4, NV, x + ow * ps, ps, xrow, w, KH, J, Co, y + ow * Co);
  switch (OW - ow) {
    case 3: fwd_tile(3, NV, x + ow * ps, ps, xrow, w, KH, J, Co, y + ow * Co); break;
    case 2: fwd_tile(2, NV, x + ow * ps, ps, xrow, w, KH, J, Co, y + ow * Co); break;
    case 1: fwd_tile(1, NV, x + ow * ps, ps, xrow, w, KH, J, Co, y + ow * Co); break;
    default: break;
  }
}

/* Computes output rows r0..r1-1 of the N*OH rows (row r: image r / OH, output row r % OH); a thread pool gives each thread its own rows. */
EXPORT(conv2d)
void conv2d(const float* xp, int N, int Hp, int Wp, int Ci, const float* w, int KH, int KW, int Co, int sh, int sw,
            float* y, int OH, int OW, int r0, int r1) {
  const int J = KW * Ci, ps = sw * Ci, xrow = Wp * Ci;
  for (int r = r0; r < r1; r++) {
    const int n = r / OH, oh = r % OH;
    const float* x = xp + (n * Hp + oh * sh) * xrow;
    float* yr = y + (n * OH + oh) * OW * Co;
    int co = 0;
    for (; co + 8 <= Co; co += 8) fwd_row(2, x, ps, xrow, w + co, KH, J, Co, yr + co, OW);
    if (co < Co) fwd_row(1, x, ps, xrow, w + co, KH, J, Co, yr + co, OW);
  }
}

/*
 * Forward for fewer than 4 output channels: a dot product over j per pixel,
 * vectorised over j. wt is the filter transposed to [Co][KH][J].
 */
INLINE void dot_tile(const int MR, const float* x, int ps, int xrow, const float* w, int KH, int J, float* out) {
  v128_t acc[4];
  float tail[4];
  for (int p = 0; p < MR; p++) {
    acc[p] = wasm_f32x4_splat(0.0f);
    tail[p] = 0.0f;
  }
  const int J4 = J & ~3;
  for (int kh = 0; kh < KH; kh++) {
    const float* xr = x + kh * xrow;
    const float* wr = w + kh * J;
    for (int j = 0; j < J4; j += 4) {
      v128_t b = wasm_v128_load(wr + j);
      for (int p = 0; p < MR; p++) acc[p] = MADD(wasm_v128_load(xr + p * ps + j), b, acc[p]);
    }
    for (int j = J4; j < J; j++)
      for (int p = 0; p < MR; p++) tail[p] += xr[p * ps + j] * wr[j];
  }
  for (int p = 0; p < MR; p++) {
    v128_t a = acc[p];
    out[p] = wasm_f32x4_extract_lane(a, 0) + wasm_f32x4_extract_lane(a, 1) + wasm_f32x4_extract_lane(a, 2) +
             wasm_f32x4_extract_lane(a, 3) + tail[p];
  }
}

/* Output rows r0..r1-1 of the N*OH rows, as conv2d. */
EXPORT(conv2d_narrow)
void conv2d_narrow(const float* xp, int N, int Hp, int Wp, int Ci, const float* wt, int KH, int KW, int Co, int sh,
                   int sw, float* y, int OH, int OW, int r0, int r1) {
  const int J = KW * Ci, ps = sw * Ci, xrow = Wp * Ci;
  float out[4];
  for (int r = r0; r < r1; r++) {
    const int n = r / OH, oh = r % OH;
    const float* x = xp + (n * Hp + oh * sh) * xrow;
    float* yr = y + (n * OH + oh) * OW * Co;
    for (int co = 0; co < Co; co++) {
      const float* w = wt + co * KH * J;
      int ow = 0;
      for (; ow + 4 <= OW; ow += 4) {
        dot_tile(4, x + ow * ps, ps, xrow, w, KH, J, out);
        for (int p = 0; p < 4; p++) yr[(ow + p) * Co + co] = out[p];
      }
      for (; ow < OW; ow++) {
        dot_tile(1, x + ow * ps, ps, xrow, w, KH, J, out);
        yr[ow * Co + co] = out[0];
      }
    }
  }
}

/* ---------------------------------------------------------------------------
 * Filter gradient: dw[kh][j][co] += sum over output pixels of
 * xp[n][oh*sh+kh][ow*sw*Ci + j] * dy[n][oh][ow][co]
 * MR consecutive taps j x NV*4 channels per tile; dy rows are processed in
 * groups so the part of xp and dy a group reads stays in cache while every
 * tile of dw is updated. Needs Co % 4 == 0; dw must be zeroed by the caller.
 */
INLINE void dw_tile(const int MR, const int NV, const float* xp, int xrow, int ps, const float* dy, int OW, int Co,
                    const int* rows, int nrows, float* dw) {
  v128_t acc[4][2];
  for (int p = 0; p < MR; p++)
    for (int v = 0; v < NV; v++) acc[p][v] = wasm_v128_load(dw + p * Co + 4 * v);
  for (int r = 0; r < nrows; r++) {
    const float* x = xp + rows[2 * r] * xrow;
    const float* d = dy + rows[2 * r + 1] * OW * Co;
    for (int ow = 0; ow < OW; ow++) {
      v128_t b[2];
      for (int v = 0; v < NV; v++) b[v] = wasm_v128_load(d + ow * Co + 4 * v);
      for (int p = 0; p < MR; p++) {
        v128_t a = wasm_v128_load32_splat(x + ow * ps + p);
        for (int v = 0; v < NV; v++) acc[p][v] = MADD(a, b[v], acc[p][v]);
      }
    }
  }
  for (int p = 0; p < MR; p++)
    for (int v = 0; v < NV; v++) wasm_v128_store(dw + p * Co + 4 * v, acc[p][v]);
}

/* One dw tile of MR (1..4) taps by NV (1..2) vectors of channels. */
static void dw_any(int MR, int NV, const float* xp, int xrow, int ps, const float* dy, int OW, int Co, const int* rows,
                   int nrows, float* dw) {
  if (NV == 2) {
    switch (MR) {
      case 4: dw_tile(4, 2, xp, xrow, ps, dy, OW, Co, rows, nrows, dw); break;
      case 3: dw_tile(3, 2, xp, xrow, ps, dy, OW, Co, rows, nrows, dw); break;
      case 2: dw_tile(2, 2, xp, xrow, ps, dy, OW, Co, rows, nrows, dw); break;
      default: dw_tile(1, 2, xp, xrow, ps, dy, OW, Co, rows, nrows, dw); break;
    }
  } else {
    switch (MR) {
      case 4: dw_tile(4, 1, xp, xrow, ps, dy, OW, Co, rows, nrows, dw); break;
      case 3: dw_tile(3, 1, xp, xrow, ps, dy, OW, Co, rows, nrows, dw); break;
      case 2: dw_tile(2, 1, xp, xrow, ps, dy, OW, Co, rows, nrows, dw); break;
      default: dw_tile(1, 1, xp, xrow, ps, dy, OW, Co, rows, nrows, dw); break;
    }
  }
}

/* Fills rows (2 ints per dy row of the group: input row index, dy row index) for filter row kh. */
INLINE void group_rows(int g, int nrows, int OH, int Hp, int sh, int kh, int* rows) {
  for (int r = 0; r < nrows; r++) {
    const int n = (g + r) / OH, oh = (g + r) % OH;
    rows[2 * r] = n * Hp + oh * sh + kh;
    rows[2 * r + 1] = g + r;
  }
}

/*
 * rows: scratch of 2*group ints (one per thread). The work is split into
 * KH * ceil(Co/8) * ceil(J/4) units (filter row kh, block of 8 channels, block
 * of 4 taps; in that order), and this call does units u0..u1-1: every unit
 * owns its part of dw, so threads given disjoint units compute exactly what
 * one thread computes.
 */
EXPORT(conv2d_filter)
void conv2d_filter(const float* xp, int N, int Hp, int Wp, int Ci, const float* dy, int OH, int OW, int Co, int sh,
                   int sw, float* dw, int KH, int KW, int* rows, int group, int u0, int u1) {
  const int J = KW * Ci, ps = sw * Ci, xrow = Wp * Ci;
  const int NT = (J + 3) / 4, per = ((Co + 7) / 8) * NT;
  const int total = N * OH;
  if (u1 > KH * per) u1 = KH * per;
  for (int g = 0; g < total; g += group) {
    const int nrows = total - g < group ? total - g : group;
    for (int kh = u0 / per; kh * per < u1; kh++) {
      group_rows(g, nrows, OH, Hp, sh, kh, rows);
      float* dwk = dw + kh * J * Co;
      const int a = u0 > kh * per ? u0 - kh * per : 0, b = u1 < (kh + 1) * per ? u1 - kh * per : per;
      for (int u = a; u < b; u++) {
        const int co = (u / NT) * 8, j = (u % NT) * 4;
        dw_any(J - j < 4 ? J - j : 4, co + 8 <= Co ? 2 : 1, xp + j, xrow, ps, dy + co, OW, Co, rows, nrows, dwk + j * Co + co);
      }
    }
  }
}

/*
 * Filter gradient for fewer than 4 output channels, vectorised over the taps
 * j: dwt[co][kh][j] += xp[..][ow*sw*Ci + j] * dy[..][co]; taps past the last
 * multiple of 4 are summed one by one. dwt must be zeroed by the caller.
 */
INLINE void dwn_block(const int NB, const float* xp, int xrow, int ps, const float* dy, int OW, int Co, int co,
                      const int* rows, int nrows, float* dw) {
  v128_t acc[8];
  for (int b = 0; b < NB; b++) acc[b] = wasm_v128_load(dw + 4 * b);
  for (int r = 0; r < nrows; r++) {
    const float* x = xp + rows[2 * r] * xrow;
    const float* d = dy + rows[2 * r + 1] * OW * Co + co;
    for (int ow = 0; ow < OW; ow++) {
      v128_t s = wasm_v128_load32_splat(d + ow * Co);
      for (int b = 0; b < NB; b++) acc[b] = MADD(wasm_v128_load(x + ow * ps + 4 * b), s, acc[b]);
    }
  }
  for (int b = 0; b < NB; b++) wasm_v128_store(dw + 4 * b, acc[b]);
}

/* Units: KH * Co * ceil(J/32) (filter row kh, channel co, block of 32 taps; in that order), split as conv2d_filter's. */
EXPORT(conv2d_filter_narrow)
void conv2d_filter_narrow(const float* xp, int N, int Hp, int Wp, int Ci, const float* dy, int OH, int OW, int Co,
                          int sh, int sw, float* dwt, int KH, int KW, int* rows, int group, int u0, int u1) {
  const int J = KW * Ci, ps = sw * Ci, xrow = Wp * Ci;
  const int NJ = (J + 31) / 32, per = Co * NJ;
  const int total = N * OH;
  if (u1 > KH * per) u1 = KH * per;
  for (int g = 0; g < total; g += group) {
    const int nrows = total - g < group ? total - g : group;
    for (int kh = u0 / per; kh * per < u1; kh++) {
      group_rows(g, nrows, OH, Hp, sh, kh, rows);
      const int a = u0 > kh * per ? u0 - kh * per : 0, b = u1 < (kh + 1) * per ? u1 - kh * per : per;
      for (int u = a; u < b; u++) {
        const int co = u / NJ, j0 = (u % NJ) * 32, j1 = j0 + 32 < J ? j0 + 32 : J;
        float* d = dwt + (co * KH + kh) * J;
        int j = j0;
        if (j + 32 <= j1) {
          dwn_block(8, xp + j, xrow, ps, dy, OW, Co, co, rows, nrows, d + j);
          j += 32;
        }
        for (; j + 4 <= j1; j += 4) dwn_block(1, xp + j, xrow, ps, dy, OW, Co, co, rows, nrows, d + j);
        for (; j < j1; j++) {
          float s = d[j];
          for (int r = 0; r < nrows; r++) {
            const float* x = xp + rows[2 * r] * xrow + j;
            const float* dr = dy + rows[2 * r + 1] * OW * Co + co;
            for (int ow = 0; ow < OW; ow++) s += x[ow * ps] * dr[ow * Co];
          }
          d[j] = s;
        }
      }
    }
  }
}

/* ---------------------------------------------------------------------------
 * Copies [N][H][W][C] into the middle of a zeroed [N][Hp][Wp][C] (pt rows on
 * top, pl columns on the left).
 */
EXPORT(pad_nhwc)
void pad_nhwc(const float* x, int N, int H, int W, int C, float* xp, int Hp, int Wp, int pt, int pl) {
  __builtin_memset(xp, 0, (unsigned long)N * Hp * Wp * C * sizeof(float));
  for (int n = 0; n < N; n++)
    for (int h = 0; h < H; h++)
      __builtin_memcpy(xp + ((n * Hp + h + pt) * Wp + pl) * C, x + (n * H + h) * W * C, (unsigned long)W * C * sizeof(float));
}

/* Copies rows of C floats to rows of C2 floats: zero-fills when C2 > C, drops the rest when C2 < C. */
EXPORT(copy_rows)
void copy_rows(const float* src, int rows, int C, float* dst, int C2) {
  const int m = C < C2 ? C : C2;
  for (int r = 0; r < rows; r++) {
    const float* s = src + r * C;
    float* d = dst + r * C2;
    int c = 0;
    for (; c < m; c++) d[c] = s[c];
    for (; c < C2; c++) d[c] = 0.0f;
  }
}

/*
 * dst[r][c] = src[r][c] for c < cols, over rows of sstride (src) and dstride
 * (dst) floats: one part of a split or a concatenation along the last axis.
 */
EXPORT(copy_cols)
void copy_cols(const float* src, int rows, int sstride, float* dst, int dstride, int cols) {
  const int c4 = cols & ~3;
  for (int r = 0; r < rows; r++) {
    const float* s = src + r * sstride;
    float* d = dst + r * dstride;
    int c = 0;
    for (; c < c4; c += 4) wasm_v128_store(d + c, wasm_v128_load(s + c));
    for (; c < cols; c++) d[c] = s[c];
  }
}

/* dst[c][r] = src[r][c] for a [rows][C] matrix. */
EXPORT(transpose2d)
void transpose2d(const float* src, int rows, int C, float* dst) {
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < C; c++) dst[c * rows + r] = src[r * C + c];
}

/* ---------------------------------------------------------------------------
 * out[c] = scale * sum_r x[r][c] for a [rows][cols] matrix: sums of 64 rows
 * at a time in float32 SIMD registers, added up in float64 (acc: cols
 * doubles, zeroed by the caller), so long columns keep float32 precision.
 * sum_rows_acc only adds into acc (a thread pool gives each thread blocks of
 * 64 rows and its own acc, and adds the accs up); sum_rows also writes out.
 */
EXPORT(sum_rows_acc)
void sum_rows_acc(const float* x, int rows, int cols, double* acc) {
  for (int r0 = 0; r0 < rows; r0 += 64) {
    const int r1 = rows - r0 < 64 ? rows : r0 + 64;
    int c = 0;
    for (; c + 16 <= cols; c += 16) {
      v128_t s0 = wasm_f32x4_splat(0.0f), s1 = s0, s2 = s0, s3 = s0;
      for (int r = r0; r < r1; r++) {
        const float* p = x + r * cols + c;
        s0 = wasm_f32x4_add(s0, wasm_v128_load(p));
        s1 = wasm_f32x4_add(s1, wasm_v128_load(p + 4));
        s2 = wasm_f32x4_add(s2, wasm_v128_load(p + 8));
        s3 = wasm_f32x4_add(s3, wasm_v128_load(p + 12));
      }
      float part[16];
      wasm_v128_store(part, s0);
      wasm_v128_store(part + 4, s1);
      wasm_v128_store(part + 8, s2);
      wasm_v128_store(part + 12, s3);
      for (int i = 0; i < 16; i++) acc[c + i] += part[i];
    }
    for (; c + 4 <= cols; c += 4) {
      v128_t s0 = wasm_f32x4_splat(0.0f);
      for (int r = r0; r < r1; r++) s0 = wasm_f32x4_add(s0, wasm_v128_load(x + r * cols + c));
      acc[c] += wasm_f32x4_extract_lane(s0, 0);
      acc[c + 1] += wasm_f32x4_extract_lane(s0, 1);
      acc[c + 2] += wasm_f32x4_extract_lane(s0, 2);
      acc[c + 3] += wasm_f32x4_extract_lane(s0, 3);
    }
    for (; c < cols; c++) {
      float s = 0.0f;
      for (int r = r0; r < r1; r++) s += x[r * cols + c];
      acc[c] += s;
    }
  }
}

EXPORT(sum_rows)
void sum_rows(const float* x, int rows, int cols, float* out, double* acc, float scale) {
  sum_rows_acc(x, rows, cols, acc);
  for (int c = 0; c < cols; c++) out[c] = (float)(acc[c] * scale);
}

/* ---------------------------------------------------------------------------
 * Gradient of nearest-neighbour up-sampling by whole factors fh x fw:
 * dx[n][ih][iw][c] = sum over the fh x fw block of dy[n][ih*fh+i][iw*fw+j][c].
 */
EXPORT(upsample_nearest_grad)
void upsample_nearest_grad(const float* dy, int N, int OH, int OW, int C, int fh, int fw, float* dx) {
  const int IH = OH / fh, IW = OW / fw, C4 = C & ~3;
  for (int n = 0; n < N; n++)
    for (int ih = 0; ih < IH; ih++)
      for (int iw = 0; iw < IW; iw++) {
        float* o = dx + ((n * IH + ih) * IW + iw) * C;
        for (int c = 0; c < C4; c += 4) {
          v128_t s = wasm_f32x4_splat(0.0f);
          for (int i = 0; i < fh; i++)
            for (int j = 0; j < fw; j++) s = wasm_f32x4_add(s, wasm_v128_load(dy + ((n * OH + ih * fh + i) * OW + iw * fw + j) * C + c));
          wasm_v128_store(o + c, s);
        }
        for (int c = C4; c < C; c++) {
          float s = 0.0f;
          for (int i = 0; i < fh; i++)
            for (int j = 0; j < fw; j++) s += dy[((n * OH + ih * fh + i) * OW + iw * fw + j) * C + c];
          o[c] = s;
        }
      }
}

/* ---------------------------------------------------------------------------
 * Batch normalisation with per-channel parameters: y = (x - mean[c]) * a[c] + b[c]
 * (a = scale / sqrt(variance + epsilon), b = offset), over rows of C channels.
 */
EXPORT(batch_norm)
void batch_norm(const float* x, int rows, int C, const float* mean, const float* a, const float* b, float* y) {
  const int C4 = C & ~3;
  for (int r = 0; r < rows; r++) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    for (int c = 0; c < C4; c += 4) {
      v128_t v = wasm_f32x4_sub(wasm_v128_load(xr + c), wasm_v128_load(mean + c));
      wasm_v128_store(yr + c, wasm_f32x4_add(wasm_f32x4_mul(v, wasm_v128_load(a + c)), wasm_v128_load(b + c)));
    }
    for (int c = C4; c < C; c++) yr[c] = (xr[c] - mean[c]) * a[c] + b[c];
  }
}

/* ---------------------------------------------------------------------------
 * Max-pool gradient (NHWC): each window's dy goes to the first position of
 * its maximum in row-major window order (TensorFlow's rule; a window of only
 * NaN or -Infinity passes nothing), summed where windows overlap. dx is
 * zeroed here. Channels in blocks of 4 lanes, the rest one by one.
 */
EXPORT(max_pool_grad)
void max_pool_grad(const float* x, int N, int H, int W, int C, const float* dy, int OH, int OW, int fh, int fw, int sh,
                   int sw, int pt, int pl, float* dx) {
  __builtin_memset(dx, 0, (unsigned long)N * H * W * C * sizeof(float));
  const int C4 = C & ~3;
  const float NEG_INF = -__builtin_inff();
  for (int n = 0; n < N; n++)
    for (int oh = 0; oh < OH; oh++) {
      const int h0 = oh * sh - pt;
      const int i0 = h0 < 0 ? 0 : h0, i1 = h0 + fh > H ? H : h0 + fh;
      for (int ow = 0; ow < OW; ow++) {
        const int w0 = ow * sw - pl;
        const int j0 = w0 < 0 ? 0 : w0, j1 = w0 + fw > W ? W : w0 + fw;
        const float* g = dy + ((n * OH + oh) * OW + ow) * C;
        for (int c = 0; c < C4; c += 4) {
          v128_t best = wasm_f32x4_splat(NEG_INF);
          v128_t at = wasm_i32x4_splat(-1);
          for (int i = i0; i < i1; i++)
            for (int j = j0; j < j1; j++) {
              const int off = ((n * H + i) * W + j) * C + c;
              const v128_t v = wasm_v128_load(x + off);
              const v128_t gt = wasm_f32x4_gt(v, best);
              best = wasm_v128_bitselect(v, best, gt);
              at = wasm_v128_bitselect(wasm_i32x4_splat(off), at, gt);
            }
          int idx[4];
          wasm_v128_store(idx, at);
          for (int l = 0; l < 4; l++)
            if (idx[l] >= 0) dx[idx[l] + l] += g[c + l];
        }
        for (int c = C4; c < C; c++) {
          float best = NEG_INF;
          int at = -1;
          for (int i = i0; i < i1; i++)
            for (int j = j0; j < j1; j++) {
              const int off = ((n * H + i) * W + j) * C + c;
              if (x[off] > best) {
                best = x[off];
                at = off;
              }
            }
          if (at >= 0) dx[at] += g[c];
        }
      }
    }
}
