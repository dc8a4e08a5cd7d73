import { backend_util, util, type KernelFunc, type NamedAttrMap, type TensorInfo } from '@tensorflow/tfjs-core';
import type { KernelArgs, WasmBackend } from './kernel-utils.js';
import { kernelsFor, ptr, withOutput, type ConvBackend } from './wasm-conv.js';

interface RefCountingBackend extends WasmBackend {
  incRef(dataId: unknown): void;
}

/** How often the kernels below took their own path; counted for tests. */
export const smallKernelCounts = {
  sharedIdentity: 0,
  sharedCast: 0,
  leadingSum: 0,
  leadingMean: 0,
  blockTile: 0,
  batchNorm: 0,
  upsampleGrad: 0,
  splitLast: 0,
  concatLast: 0,
};

const share = (backend: RefCountingBackend, x: TensorInfo): TensorInfo => {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
};

/**
 * Identity without a copy: the output shares the input's buffer, reference
 * counted, as tfjs-backend-wasm's Reshape and the cpu backend's Identity do
 * (tensors are immutable). tfjs-backend-wasm's Identity copies, and the
 * engine clones every tensor it saves for a gradient: 13 copies of a
 * 32x28x28x32 activation in one seed-mnist training step.
 */
export function makeIdentityKernel(original: KernelFunc): KernelFunc {
  return ((args: KernelArgs) => {
    const x = args.inputs['x'] as TensorInfo;
    if (x.dtype === 'string') return original(args);
    smallKernelCounts.sharedIdentity++;
    return share(args.backend as RefCountingBackend, x);
  }) as unknown as KernelFunc;
}

/**
 * Cast to the dtype a tensor already has shares its buffer. A cast to bool
 * is x != 0 (tfjs-backend-wasm's copies the number into a byte, so -2 became
 * 254 and 0.5 became 0); other casts convert as before.
 */
export function makeCastKernel(original: KernelFunc): KernelFunc {
  return ((args: KernelArgs) => {
    const x = args.inputs['x'] as TensorInfo;
    const dtype = args.attrs['dtype'];
    if (x.dtype === 'string') return original(args);
    if (x.dtype === dtype) {
      smallKernelCounts.sharedCast++;
      return share(args.backend as RefCountingBackend, x);
    }
    if (dtype !== 'bool') return original(args);
    const backend = args.backend as WasmBackend;
    const out = backend.makeOutput(x.shape.slice(), 'bool' as 'float32');
    const xv = backend.typedArrayFromHeap(x);
    const ov = backend.typedArrayFromHeap(out);
    for (let i = 0; i < xv.length; i++) ov[i] = xv[i] !== 0 ? 1 : 0;
    return out;
  }) as unknown as KernelFunc;
}

/**
 * Sum or Mean of a float32 tensor over its leading axes (0..k-1), the
 * reductions of bias and batch-norm gradients and of batch moments: one pass
 * over the rows (cvc's SIMD kernel sum_rows, or a JavaScript loop where cvc's
 * kernels are not in use), summed in float64 past every 64 rows, where
 * tfjs-backend-wasm transposes the reduced axes to the end first (4 ms for a
 * 32x28x28x32 activation, sum_rows 0.3 ms). Other reductions go to `original`.
 */
export function makeLeadingReduceKernel(kind: 'sum' | 'mean', original: KernelFunc): KernelFunc {
  return ((args: KernelArgs) => {
    const x = args.inputs['x'] as TensorInfo;
    const attrs = args.attrs as NamedAttrMap & { axis: number | number[]; keepDims: boolean };
    if (x.dtype !== 'float32' || x.shape.length === 0) return original(args);
    const axes = util.parseAxisParam(attrs.axis, x.shape).sort((a, b) => a - b);
    const k = axes.length;
    if (k === 0 || axes.some((a, i) => a !== i)) return original(args);
    const backend = args.backend as WasmBackend;
    const kept = x.shape.slice(k);
    const cols = util.sizeFromShape(kept);
    const rows = util.sizeFromShape(x.shape.slice(0, k));
    if (rows === 0) return original(args);
    const outShape = attrs.keepDims ? backend_util.expandShapeToKeepDim(kept, axes) : kept;
    const scale = kind === 'mean' ? 1 / rows : 1;
    const kernels = kernelsFor(backend as ConvBackend);
    const out = withOutput(backend as ConvBackend, outShape, (o, s) => {
      if (kernels !== undefined) {
        kernels.sum_rows(ptr(backend as ConvBackend, x), rows, cols, ptr(backend as ConvBackend, o), s.alloc(cols * kernels.chunks, true, 8), scale);
        return;
      }
      // Views after the allocation of o, which may grow (and so replace) the heap.
      const xv = backend.typedArrayFromHeap(x);
      const ov = backend.typedArrayFromHeap(o);
      const acc = new Float64Array(cols);
      for (let r = 0, base = 0; r < rows; r++, base += cols) {
        for (let c = 0; c < cols; c++) acc[c] = (acc[c] as number) + (xv[base + c] as number);
      }
      for (let c = 0; c < cols; c++) ov[c] = (acc[c] as number) * scale;
    });
    if (kind === 'sum') smallKernelCounts.leadingSum++;
    else smallKernelCounts.leadingMean++;
    return out;
  }) as unknown as KernelFunc;
}

/**
 * Tile by block copies: the input's rows go to their places for the first
 * repetition, then, from the last axis to the first, each axis' span is
 * repeated by doubling copyWithin (fill for a single value). Broadcasts such
 * as [1,1,1,32] to [32,28,28,32] (the Mean gradient, broadcastTo) or [32,1]
 * to [32,3072] (the cosine loss' Sum gradient) become a few memory copies;
 * tfjs-backend-wasm's Tile computes an index per element (100 ms and 10 ms
 * for those two).
 */
export function makeTileKernel(original: KernelFunc): KernelFunc {
  return ((args: KernelArgs) => {
    const x = args.inputs['x'] as TensorInfo;
    const reps = args.attrs['reps'] as number[];
    const rank = x.shape.length;
    if (x.dtype === 'string' || reps.length !== rank || rank === 0) return original(args);
    const backend = args.backend as WasmBackend;
    const outShape = x.shape.map((d, i) => d * (reps[i] as number));
    const out = backend.makeOutput(outShape, x.dtype as 'float32');
    const total = util.sizeFromShape(outShape);
    if (total > 0) {
      const ov = backend.typedArrayFromHeap(out);
      const xv = backend.typedArrayFromHeap(x);
      // Output strides, and the input's rows along the last axis placed for repetition 0 of every axis.
      const stride = new Array<number>(rank);
      stride[rank - 1] = 1;
      for (let a = rank - 2; a >= 0; a--) stride[a] = (stride[a + 1] as number) * (outShape[a + 1] as number);
      const last = x.shape[rank - 1] as number;
      const rows = util.sizeFromShape(x.shape) / last;
      const idx = new Array<number>(rank).fill(0);
      for (let r = 0; r < rows; r++) {
        let base = 0;
        for (let a = 0; a < rank - 1; a++) base += (idx[a] as number) * (stride[a] as number);
        ov.set(xv.subarray(r * last, (r + 1) * last), base);
        for (let a = rank - 2; a >= 0; a--) {
          idx[a] = (idx[a] as number) + 1;
          if ((idx[a] as number) < (x.shape[a] as number)) break;
          idx[a] = 0;
        }
      }
      // Repeat each axis' span, innermost first; the prefixes are the first-repetition positions of the outer axes.
      for (let a = rank - 1; a >= 0; a--) {
        const rep = reps[a] as number;
        if (rep === 1) continue;
        const span = (x.shape[a] as number) * (stride[a] as number);
        const whole = span * rep;
        const pre = new Array<number>(a).fill(0);
        const prefixes = util.sizeFromShape(x.shape.slice(0, a));
        for (let p = 0; p < prefixes; p++) {
          let base = 0;
          for (let j = 0; j < a; j++) base += (pre[j] as number) * (stride[j] as number);
          if (span === 1) ov.fill(ov[base] as number, base + 1, base + whole);
          else for (let filled = span; filled < whole; filled *= 2) ov.copyWithin(base + filled, base, base + Math.min(filled, whole - filled));
          for (let j = a - 1; j >= 0; j--) {
            pre[j] = (pre[j] as number) + 1;
            if ((pre[j] as number) < (x.shape[j] as number)) break;
            pre[j] = 0;
          }
        }
      }
    }
    smallKernelCounts.blockTile++;
    return out;
  }) as unknown as KernelFunc;
}

/**
 * FusedBatchNorm (inference form, as the layers call it with batch moments
 * in training) with per-channel mean, variance, offset and scale: cvc's SIMD
 * kernel y = (x - mean) * a + b, with a = scale / sqrt(variance + epsilon)
 * computed per channel first. tfjs-backend-wasm's takes 4-7 ms for a
 * 32x28x28x32 activation, this under 1 ms. Other shapes go to `original`.
 */
export function makeBatchNormKernel(original: KernelFunc): KernelFunc {
  return ((args: KernelArgs) => {
    const backend = args.backend as ConvBackend;
    const { x, mean, variance, offset, scale } = args.inputs as Record<string, TensorInfo | undefined>;
    const kernels = kernelsFor(backend);
    const channels = x?.shape[x.shape.length - 1] ?? 0;
    const perChannel = (t: TensorInfo | undefined) => t === undefined || (t.dtype === 'float32' && util.sizeFromShape(t.shape) === channels);
    if (
      kernels === undefined ||
      x === undefined ||
      mean === undefined ||
      variance === undefined ||
      x.dtype !== 'float32' ||
      channels === 0 ||
      ![mean, variance, offset, scale].every(perChannel)
    ) {
      return original(args);
    }
    const eps = (args.attrs['varianceEpsilon'] as number | undefined) ?? 0.001;
    const out = withOutput(backend, x.shape.slice(), (o, s) => {
      const a = s.alloc(channels);
      const b = s.alloc(channels);
      // Views after the allocations above, which may grow (and so replace) the heap.
      const av = new Float32Array(backend.typedArrayFromHeap(o).buffer, a, channels);
      const bv = new Float32Array(av.buffer, b, channels);
      const varv = backend.typedArrayFromHeap(variance);
      const scalev = scale === undefined ? undefined : backend.typedArrayFromHeap(scale);
      const offv = offset === undefined ? undefined : backend.typedArrayFromHeap(offset);
      for (let c = 0; c < channels; c++) {
        av[c] = (scalev?.[c] ?? 1) / Math.sqrt((varv[c] as number) + eps);
        bv[c] = offv?.[c] ?? 0;
      }
      kernels.batch_norm(ptr(backend, x), util.sizeFromShape(x.shape) / channels, channels, ptr(backend, mean), a, b, ptr(backend, o));
    });
    smallKernelCounts.batchNorm++;
    return out;
  }) as unknown as KernelFunc;
}

/**
 * ResizeNearestNeighborGrad for up-sampling by whole factors (the layers'
 * UpSampling2D, without alignCorners): each input pixel's gradient is the
 * sum of its fh x fw block of dy, in cvc's SIMD kernel. tfjs-backend-wasm's
 * takes 4-9 ms for a 32x32x32x16 gradient, this under 1 ms. Other resizes go
 * to `original`.
 */
export function makeResizeNearestGradKernel(original: KernelFunc): KernelFunc {
  return ((args: KernelArgs) => {
    const backend = args.backend as ConvBackend;
    const images = args.inputs['images'] as TensorInfo;
    const dy = args.inputs['dy'] as TensorInfo;
    const kernels = kernelsFor(backend);
    if (kernels === undefined || args.attrs['alignCorners'] === true || dy.dtype !== 'float32' || images.shape.length !== 4 || dy.shape.length !== 4) {
      return original(args);
    }
    const [n, ih, iw, c] = images.shape as [number, number, number, number];
    const [dn, oh, ow, dc] = dy.shape as [number, number, number, number];
    if (n !== dn || c !== dc || ih === 0 || iw === 0 || oh % ih !== 0 || ow % iw !== 0 || oh < ih || ow < iw) return original(args);
    const out = backend.makeOutput([n, ih, iw, c], 'float32');
    kernels.upsample_nearest_grad(ptr(backend, dy), n, oh, ow, c, oh / ih, ow / iw, ptr(backend, out));
    smallKernelCounts.upsampleGrad++;
    return out;
  }) as unknown as KernelFunc;
}

/**
 * SplitV along the last axis of a float32 tensor as one strided row copy per
 * part (csrc/conv.c copy_cols). It is the gradient of a concatenation of
 * channels (up-conv.ts joins its phase convolutions that way), where
 * tfjs-backend-wasm slices element by element (about 7 ms per part of a
 * 32x14x14x32 map). Other axes and dtypes go to `original`.
 */
export function makeSplitLastKernel(original: KernelFunc): KernelFunc {
  return ((args: KernelArgs) => {
    const backend = args.backend as ConvBackend;
    const x = args.inputs['x'] as TensorInfo;
    const kernels = kernelsFor(backend);
    const rank = x.shape.length;
    if (kernels === undefined || x.dtype !== 'float32' || rank < 2) return original(args);
    const axis = util.parseAxisParam(args.attrs['axis'] as number | number[], x.shape)[0];
    if (axis !== rank - 1) return original(args);
    const sizes = backend_util.prepareSplitSize(x, args.attrs['numOrSizeSplits'] as number | number[], axis);
    const width = x.shape[axis] as number;
    const rows = util.sizeFromShape(x.shape) / Math.max(1, width);
    if (rows === 0 || sizes.some((w) => w === 0)) return original(args);
    const outs: TensorInfo[] = [];
    let begin = 0;
    for (const w of sizes) {
      const out = backend.makeOutput([...x.shape.slice(0, axis), w], 'float32');
      kernels.copy_cols(ptr(backend, x) + 4 * begin, rows, width, ptr(backend, out), w, w);
      outs.push(out);
      begin += w;
    }
    smallKernelCounts.splitLast++;
    return outs;
  }) as unknown as KernelFunc;
}

/** Concat along the last axis of float32 tensors as one strided row copy per input (copy_cols); else `original`. */
export function makeConcatLastKernel(original: KernelFunc): KernelFunc {
  return ((args: KernelArgs) => {
    const backend = args.backend as ConvBackend;
    const xs = (Array.isArray(args.inputs) ? args.inputs : Object.values(args.inputs)) as TensorInfo[];
    const kernels = kernelsFor(backend);
    const first = xs[0];
    if (kernels === undefined || first === undefined || xs.length < 2) return original(args);
    const rank = first.shape.length;
    if (rank < 2 || xs.some((t) => t.dtype !== 'float32' || t.shape.length !== rank || util.sizeFromShape(t.shape) === 0)) return original(args);
    const axis = util.parseAxisParam(args.attrs['axis'] as number | number[], first.shape)[0];
    const lead = first.shape.slice(0, rank - 1);
    if (axis !== rank - 1 || xs.some((t) => !util.arraysEqual(t.shape.slice(0, rank - 1), lead))) return original(args);
    const width = xs.reduce((a, t) => a + (t.shape[rank - 1] as number), 0);
    const rows = util.sizeFromShape(lead);
    const out = backend.makeOutput([...lead, width], 'float32');
    let begin = 0;
    for (const t of xs) {
      const w = t.shape[rank - 1] as number;
      kernels.copy_cols(ptr(backend, t), rows, w, ptr(backend, out) + 4 * begin, width, w);
      begin += w;
    }
    smallKernelCounts.concatLast++;
    return out;
  }) as unknown as KernelFunc;
}
