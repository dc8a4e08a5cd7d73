import { backend_util, util, type KernelFunc, type NamedAttrMap, type TensorInfo } from '@tensorflow/tfjs-core';
import type { KernelArgs, WasmBackend } from './kernel-utils.js';
import { kernelsFor, ptr, Scratch, type ConvBackend } from './wasm-conv.js';

interface RefCountingBackend extends WasmBackend {
  incRef(dataId: unknown): void;
}

/** How often the kernels below took their own path; counted for tests. */
export const smallKernelCounts = { sharedIdentity: 0, sharedCast: 0, leadingSum: 0, leadingMean: 0, blockTile: 0 };

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

/** Cast to the dtype a tensor already has shares its buffer; other casts convert as before. */
export function makeCastKernel(original: KernelFunc): KernelFunc {
  return ((args: KernelArgs) => {
    const x = args.inputs['x'] as TensorInfo;
    if (x.dtype === 'string' || x.dtype !== args.attrs['dtype']) return original(args);
    smallKernelCounts.sharedCast++;
    return share(args.backend as RefCountingBackend, x);
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
    const out = backend.makeOutput(outShape, 'float32');
    const scale = kind === 'mean' ? 1 / rows : 1;
    const kernels = kernelsFor(backend as ConvBackend);
    if (kernels !== undefined) {
      const s = new Scratch(backend as ConvBackend);
      try {
        kernels.sum_rows(ptr(backend as ConvBackend, x), rows, cols, ptr(backend as ConvBackend, out), s.alloc(cols, true, 8), scale);
      } finally {
        s.free();
      }
    } else {
      // Views after the allocation above, which may grow (and so replace) the heap.
      const xv = backend.typedArrayFromHeap(x);
      const ov = backend.typedArrayFromHeap(out);
      const acc = new Float64Array(cols);
      for (let r = 0, base = 0; r < rows; r++, base += cols) {
        for (let c = 0; c < cols; c++) acc[c] = (acc[c] as number) + (xv[base + c] as number);
      }
      for (let c = 0; c < cols; c++) ov[c] = (acc[c] as number) * scale;
    }
    if (kind === 'sum') smallKernelCounts.leadingSum++;
    else smallKernelCounts.leadingMean++;
    return out;
  }) as unknown as KernelFunc;
}

/**
 * Tile that repeats the whole input, i.e. only along leading axes of size 1
 * (reps [a, b, ..., 1, 1]): a broadcast such as [1,1,1,32] to [32,28,28,32],
 * as the Mean gradient and broadcastTo use. Copies the block and doubles it
 * with copyWithin; tfjs-backend-wasm's Tile computes an index per element
 * (100 ms for that example, this under 1 ms). Other tilings go to `original`.
 */
export function makeTileKernel(original: KernelFunc): KernelFunc {
  return ((args: KernelArgs) => {
    const x = args.inputs['x'] as TensorInfo;
    const reps = args.attrs['reps'] as number[];
    if (x.dtype === 'string' || reps.length !== x.shape.length) return original(args);
    let k = 0;
    while (k < reps.length && x.shape[k] === 1) k++;
    if (reps.slice(k).some((r) => r !== 1)) return original(args);
    const copies = util.sizeFromShape(reps);
    const block = util.sizeFromShape(x.shape);
    const backend = args.backend as WasmBackend;
    const out = backend.makeOutput(x.shape.map((d, i) => d * (reps[i] as number)), x.dtype as 'float32');
    const total = copies * block;
    if (total > 0) {
      const ov = backend.typedArrayFromHeap(out);
      ov.set(backend.typedArrayFromHeap(x));
      for (let filled = block; filled < total; filled *= 2) ov.copyWithin(filled, 0, Math.min(filled, total - filled));
    }
    smallKernelCounts.blockTile++;
    return out;
  }) as unknown as KernelFunc;
}
