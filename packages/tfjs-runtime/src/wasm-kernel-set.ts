/**
 * cvc's kernel exports (csrc/conv.c) and the kernel set the backend's kernels
 * call: each kernel over its whole output, split over the thread pool when
 * there is one.
 */
import type { KernelPool } from './wasm-pool.js';
import type { Split } from './wasm-pool-job.js';

/** conv2d / conv2d_narrow over the whole output (the exports take a range of rows r0..r1 after these). */
export type ConvCall = (
  xp: number,
  n: number,
  hp: number,
  wp: number,
  ci: number,
  w: number,
  kh: number,
  kw: number,
  co: number,
  sh: number,
  sw: number,
  y: number,
  oh: number,
  ow: number,
) => void;
/** conv2d_filter / conv2d_filter_narrow over every unit (the exports take a range of units u0..u1 after these). */
export type FilterCall = (
  xp: number,
  n: number,
  hp: number,
  wp: number,
  ci: number,
  dy: number,
  oh: number,
  ow: number,
  co: number,
  sh: number,
  sw: number,
  dw: number,
  kh: number,
  kw: number,
  rows: number,
  group: number,
) => void;
type Ranged<F extends (...a: never[]) => void> = (...a: [...Parameters<F>, from: number, to: number]) => void;

/** The exports of csrc/conv.c. */
export interface ConvExports {
  conv2d: Ranged<ConvCall>;
  conv2d_narrow: Ranged<ConvCall>;
  conv2d_filter: Ranged<FilterCall>;
  conv2d_filter_narrow: Ranged<FilterCall>;
  pad_nhwc: (x: number, n: number, h: number, w: number, c: number, xp: number, hp: number, wp: number, pt: number, pl: number) => void;
  copy_rows: (src: number, rows: number, c: number, dst: number, c2: number) => void;
  copy_cols: (src: number, rows: number, sstride: number, dst: number, dstride: number, cols: number) => void;
  transpose2d: (src: number, rows: number, c: number, dst: number) => void;
  sum_rows: (x: number, rows: number, cols: number, out: number, acc: number, scale: number) => void;
  sum_rows_acc: (x: number, rows: number, cols: number, acc: number) => void;
  upsample_nearest_grad: (dy: number, n: number, oh: number, ow: number, c: number, fh: number, fw: number, dx: number) => void;
  batch_norm: (x: number, rows: number, c: number, mean: number, a: number, b: number, y: number) => void;
  max_pool_grad: (
    x: number,
    n: number,
    h: number,
    w: number,
    c: number,
    dy: number,
    oh: number,
    ow: number,
    fh: number,
    fw: number,
    sh: number,
    sw: number,
    pt: number,
    pl: number,
    dx: number,
  ) => void;
}

/**
 * cvc's kernels bound to one backend's memory, each over its whole output;
 * with a thread pool (more than one wasm thread) the large calls are split
 * over the pool's threads (wasm-pool.ts). Scratch that each thread needs its
 * own of is sized by `chunks`: conv2d_filter(_narrow)'s rows hold
 * 2 * group * chunks ints, sum_rows' acc cols * chunks doubles (zeroed).
 */
export interface Kernels extends Omit<ConvExports, 'conv2d' | 'conv2d_narrow' | 'conv2d_filter' | 'conv2d_filter_narrow' | 'sum_rows_acc'> {
  conv2d: ConvCall;
  conv2d_narrow: ConvCall;
  conv2d_filter: FilterCall;
  conv2d_filter_narrow: FilterCall;
  /** Most chunks a call is split into (1 without a pool). */
  readonly chunks: number;
  /** The pool the large calls run on, if any. */
  readonly pool?: KernelPool;
}

/** Below these many multiply-adds a convolution runs on the calling thread alone (waking the pool costs more). */
const MIN_POOLED_MACS = 1 << 18;
/** Below these many elements an elementwise kernel or reduction runs on the calling thread alone. */
const MIN_POOLED_ELEMENTS = 1 << 15;
const F32 = 4;
const F64 = 8;

/** The kernel set over `raw` (an instance's exports), splitting the large calls over `pool` when given. */
export function bindKernels(raw: ConvExports, memory: { readonly buffer: ArrayBufferLike }, pool?: KernelPool): Kernels {
  const chunks = pool === undefined ? 1 : 4 * pool.threads;
  const pooled = (work: number, min: number): KernelPool | undefined => (pool !== undefined && work >= min ? pool : undefined);
  /**
   * Forward split: by output rows (image, row), or for one row of 1x1
   * "pixels" (the matmul geometry: n = oh = kh = kw = 1) by blocks of 4 pixels.
   */
  const convSplit = (n: number, hp: number, wp: number, ci: number, kh: number, kw: number, co: number, sw: number, oh: number, ow: number): Split =>
    n * oh === 1 && hp === 1 && kh === 1 && kw === 1 && sw === 1 && wp === ow
      ? {
          units: Math.ceil(ow / 4),
          scale: 4,
          total: ow,
          counts: [3, 13],
          offsets: [
            [0, ci * F32],
            [11, co * F32],
          ],
        }
      : { units: n * oh, start: 14, end: 15 };
  const conv =
    (name: 'conv2d' | 'conv2d_narrow'): ConvCall =>
    (xp, n, hp, wp, ci, w, kh, kw, co, sh, sw, y, oh, ow) => {
      const args = [xp, n, hp, wp, ci, w, kh, kw, co, sh, sw, y, oh, ow, 0, n * oh] as const;
      const p = pooled(n * oh * ow * kh * kw * ci * co, MIN_POOLED_MACS);
      if (p === undefined) raw[name](...args);
      else p.run(name, args, convSplit(n, hp, wp, ci, kh, kw, co, sw, oh, ow), chunks);
    };
  /** Filter-gradient units (csrc/conv.c): kh x 8-channel blocks x 4-tap blocks, or kh x channels x 32-tap blocks when narrow. */
  const filter =
    (name: 'conv2d_filter' | 'conv2d_filter_narrow'): FilterCall =>
    (xp, n, hp, wp, ci, dy, oh, ow, co, sh, sw, dw, kh, kw, rows, group) => {
      const taps = kw * ci;
      const units = name === 'conv2d_filter' ? kh * Math.ceil(co / 8) * Math.ceil(taps / 4) : kh * co * Math.ceil(taps / 32);
      const args = [xp, n, hp, wp, ci, dy, oh, ow, co, sh, sw, dw, kh, kw, rows, group, 0, units] as const;
      const p = pooled(n * oh * ow * kh * taps * co, MIN_POOLED_MACS);
      if (p === undefined) raw[name](...args);
      else p.run(name, args, { units, start: 16, end: 17, perChunk: [[14, 2 * group * 4]] }, chunks);
    };
  return {
    chunks,
    ...(pool !== undefined ? { pool } : {}),
    conv2d: conv('conv2d'),
    conv2d_narrow: conv('conv2d_narrow'),
    conv2d_filter: filter('conv2d_filter'),
    conv2d_filter_narrow: filter('conv2d_filter_narrow'),
    copy_rows: raw.copy_rows,
    copy_cols: raw.copy_cols,
    transpose2d: raw.transpose2d,
    pad_nhwc: (x, n, h, w, c, xp, hp, wp, pt, pl) => {
      const args = [x, n, h, w, c, xp, hp, wp, pt, pl] as const;
      const p = pooled(n * hp * wp * c, MIN_POOLED_ELEMENTS);
      if (p === undefined) raw.pad_nhwc(...args);
      else
        p.run(
          'pad_nhwc',
          args,
          {
            units: n,
            counts: [1],
            offsets: [
              [0, h * w * c * F32],
              [5, hp * wp * c * F32],
            ],
          },
          chunks,
        );
    },
    sum_rows: (x, rows, cols, out, acc, scale) => {
      const blocks = Math.ceil(rows / 64);
      const p = pooled(rows * cols, MIN_POOLED_ELEMENTS);
      if (p === undefined || blocks < 2) {
        raw.sum_rows(x, rows, cols, out, acc, scale);
        return;
      }
      // Blocks of 64 rows per chunk, each chunk into its own acc; the accs are added in chunk order.
      const k = Math.min(chunks, blocks);
      p.run(
        'sum_rows_acc',
        [x, rows, cols, acc],
        { units: blocks, scale: 64, total: rows, counts: [1], offsets: [[0, cols * F32]], perChunk: [[3, cols * F64]] },
        k,
      );
      const accs = new Float64Array(memory.buffer, acc, k * cols);
      const o = new Float32Array(memory.buffer, out, cols);
      for (let c = 0; c < cols; c++) {
        let sum = 0;
        for (let i = 0; i < k; i++) sum += accs[i * cols + c] as number;
        o[c] = sum * scale;
      }
    },
    batch_norm: (x, rows, c, mean, a, b, y) => {
      const args = [x, rows, c, mean, a, b, y] as const;
      const p = pooled(rows * c, MIN_POOLED_ELEMENTS);
      if (p === undefined) raw.batch_norm(...args);
      else
        p.run(
          'batch_norm',
          args,
          {
            units: rows,
            counts: [1],
            offsets: [
              [0, c * F32],
              [6, c * F32],
            ],
          },
          chunks,
        );
    },
    upsample_nearest_grad: (dy, n, oh, ow, c, fh, fw, dx) => {
      const args = [dy, n, oh, ow, c, fh, fw, dx] as const;
      const p = pooled(n * oh * ow * c, MIN_POOLED_ELEMENTS);
      if (p === undefined) raw.upsample_nearest_grad(...args);
      else
        p.run(
          'upsample_nearest_grad',
          args,
          {
            units: n,
            counts: [1],
            offsets: [
              [0, oh * ow * c * F32],
              [7, Math.floor(oh / fh) * Math.floor(ow / fw) * c * F32],
            ],
          },
          chunks,
        );
    },
    max_pool_grad: (x, n, h, w, c, dy, oh, ow, fh, fw, sh, sw, pt, pl, dx) => {
      const args = [x, n, h, w, c, dy, oh, ow, fh, fw, sh, sw, pt, pl, dx] as const;
      const p = pooled(n * h * w * c, MIN_POOLED_ELEMENTS);
      if (p === undefined) raw.max_pool_grad(...args);
      else
        p.run(
          'max_pool_grad',
          args,
          {
            units: n,
            counts: [1],
            offsets: [
              [0, h * w * c * F32],
              [5, oh * ow * c * F32],
              [14, h * w * c * F32],
            ],
          },
          chunks,
        );
    },
  };
}
