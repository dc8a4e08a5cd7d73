// cvc's elementwise kernels for tfjs-backend-wasm (float32, WebAssembly SIMD),
// built by scripts/build-wasm.sh into packages/tfjs-runtime/wasm/cvc-elementwise.wasm.
// Like conv.c, the module imports the backend's memory, has no data segment and
// no stack, and writes only its output buffer. src/wasm-elementwise.ts
// registers them over the backend's Add, Sub, Multiply and FusedConv2D
// (bias and activation after cvc's convolution).
//
// Binary ops: 0 add (a + b), 1 sub (a - b), 2 mul (a * b), 3 reverse sub (b - a).
// Each lane computes exactly the float32 operation the cpu backend computes.

#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))

static inline v128_t vop(int op, v128_t a, v128_t b) {
  switch (op) {
    case 0:
      return wasm_f32x4_add(a, b);
    case 1:
      return wasm_f32x4_sub(a, b);
    case 2:
      return wasm_f32x4_mul(a, b);
    default:
      return wasm_f32x4_sub(b, a);
  }
}

static inline float sop(int op, float a, float b) {
  switch (op) {
    case 0:
      return a + b;
    case 1:
      return a - b;
    case 2:
      return a * b;
    default:
      return b - a;
  }
}

// One loop per op so the switch is out of the hot loop.
#define SAME_LOOP(OP)                                                              \
  for (; i + 8 <= n; i += 8) {                                                     \
    v128_t r0 = vop(OP, wasm_v128_load(a + i), wasm_v128_load(b + i));             \
    v128_t r1 = vop(OP, wasm_v128_load(a + i + 4), wasm_v128_load(b + i + 4));     \
    wasm_v128_store(out + i, r0);                                                  \
    wasm_v128_store(out + i + 4, r1);                                              \
  }                                                                                \
  for (; i + 4 <= n; i += 4) wasm_v128_store(out + i, vop(OP, wasm_v128_load(a + i), wasm_v128_load(b + i))); \
  for (; i < n; i++) out[i] = sop(OP, a[i], b[i]);

/** out[i] = a[i] op b[i] for n values (out may be a or b). */
EXPORT(binary_same)
void binary_same(int op, const float *a, const float *b, float *out, int n) {
  int i = 0;
  switch (op) {
    case 0: SAME_LOOP(0) break;
    case 1: SAME_LOOP(1) break;
    case 2: SAME_LOOP(2) break;
    default: SAME_LOOP(3) break;
  }
}

#define ROWS_LOOP(OP)                                                              \
  for (int r = 0; r < rows; r++) {                                                 \
    const float *ar = a + (long)r * cols;                                          \
    float *orow = out + (long)r * cols;                                            \
    int c = 0;                                                                     \
    for (; c + 4 <= cols; c += 4) wasm_v128_store(orow + c, vop(OP, wasm_v128_load(ar + c), wasm_v128_load(v + c))); \
    for (; c < cols; c++) orow[c] = sop(OP, ar[c], v[c]);                          \
  }

/** out[r][c] = a[r][c] op v[c]: a rows x cols, v one row of cols (a bias or per-channel vector). */
EXPORT(binary_rows)
void binary_rows(int op, const float *a, int rows, int cols, const float *v, float *out) {
  switch (op) {
    case 0: ROWS_LOOP(0) break;
    case 1: ROWS_LOOP(1) break;
    case 2: ROWS_LOOP(2) break;
    default: ROWS_LOOP(3) break;
  }
}

#define SCALAR_LOOP(OP)                                                            \
  for (; i + 4 <= n; i += 4) wasm_v128_store(out + i, vop(OP, wasm_v128_load(a + i), sv)); \
  for (; i < n; i++) out[i] = sop(OP, a[i], s);

/** out[i] = a[i] op s for n values. */
EXPORT(binary_scalar)
void binary_scalar(int op, const float *a, int n, float s, float *out) {
  v128_t sv = wasm_f32x4_splat(s);
  int i = 0;
  switch (op) {
    case 0: SCALAR_LOOP(0) break;
    case 1: SCALAR_LOOP(1) break;
    case 2: SCALAR_LOOP(2) break;
    default: SCALAR_LOOP(3) break;
  }
}

/**
 * In place: y[r][c] = act(y[r][c] + bias[c]) for a rows x cols output, bias
 * optional (0: none); act 0 linear, 1 relu (max(x, 0); NaN stays NaN as in the
 * cpu backend's x < 0 ? 0 : x).
 */
EXPORT(bias_act)
void bias_act(float *y, int rows, int cols, const float *bias, int act) {
  v128_t zero = wasm_f32x4_splat(0.0f);
  for (int r = 0; r < rows; r++) {
    float *yr = y + (long)r * cols;
    int c = 0;
    for (; c + 4 <= cols; c += 4) {
      v128_t v = wasm_v128_load(yr + c);
      if (bias) v = wasm_f32x4_add(v, wasm_v128_load(bias + c));
      if (act == 1) v = wasm_v128_bitselect(zero, v, wasm_f32x4_lt(v, zero));
      wasm_v128_store(yr + c, v);
    }
    for (; c < cols; c++) {
      float v = yr[c];
      if (bias) v += bias[c];
      if (act == 1) v = v < 0 ? 0 : v;
      yr[c] = v;
    }
  }
}

/**
 * The ReLU gradient in one pass: out = dy * step(x), step(x) = 1 where x > 0,
 * NaN where x is NaN, else 0 (tfjs-core's mul(dy, step(x)), value for value).
 */
EXPORT(relu_grad)
void relu_grad(const float *dy, const float *x, float *out, int n) {
  v128_t one = wasm_f32x4_splat(1.0f);
  v128_t zero = wasm_f32x4_splat(0.0f);
  v128_t nan = wasm_f32x4_splat(__builtin_nanf(""));
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t xv = wasm_v128_load(x + i);
    v128_t s = wasm_v128_bitselect(one, zero, wasm_f32x4_gt(xv, zero));
    s = wasm_v128_bitselect(nan, s, wasm_f32x4_ne(xv, xv));
    wasm_v128_store(out + i, wasm_f32x4_mul(wasm_v128_load(dy + i), s));
  }
  for (; i < n; i++) {
    float xi = x[i];
    float s = xi != xi ? xi : (xi > 0 ? 1.0f : 0.0f);
    out[i] = dy[i] * s;
  }
}
