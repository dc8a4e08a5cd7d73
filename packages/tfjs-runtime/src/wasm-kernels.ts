import {
  backend_util,
  BatchMatMul,
  Cast,
  Concat,
  Conv2D,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  FusedBatchNorm,
  getKernel,
  Identity,
  MaxPoolGrad,
  Mean,
  registerKernel,
  ResizeNearestNeighborGrad,
  Reverse,
  Slice,
  SplitV,
  Sum,
  Tile,
  Transpose,
  unregisterKernel,
  type Conv2DBackpropFilterAttrs,
  type Conv2DBackpropInputAttrs,
  type KernelBackend,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { callKernel, runOnCpu, type KernelArgs, type WasmBackend } from './kernel-utils.js';
import { maxPoolGradKernel } from './wasm-maxpool-grad.js';
import { filterGradInfo, makeBatchMatMulKernel, makeConv2DBackpropFilterKernel, makeConv2DKernel } from './wasm-conv.js';
import {
  makeBatchNormKernel,
  makeCastKernel,
  makeIdentityKernel,
  makeLeadingReduceKernel,
  makeConcatLastKernel,
  makeResizeNearestGradKernel,
  makeSplitLastKernel,
  makeTileKernel,
} from './wasm-small-kernels.js';
import { registerWasmElementwiseKernels } from './wasm-elementwise.js';

const WASM = 'wasm';

/** Runs `fn` with a scratch list whose tensors are disposed afterwards. */
function withScratch<T>(backend: KernelBackend, fn: (keep: (t: TensorInfo) => TensorInfo) => T): T {
  const scratch: TensorInfo[] = [];
  try {
    return fn((t) => {
      scratch.push(t);
      return t;
    });
  } finally {
    for (const t of scratch) backend.disposeData(t.dataId);
  }
}

const call = (backend: KernelBackend, name: string, inputs: Record<string, TensorInfo>, attrs: NamedAttrMap): TensorInfo =>
  callKernel(name, backend, inputs, attrs, WASM);

/** Which path a gradient kernel took; counted for tests and profiles. */
export const kernelPathCounts = { filterFast: 0, filterFallback: 0, inputFast: 0, inputStrided: 0, inputFallback: 0 };

/**
 * dW for a conv with any stride, explicit/same/valid padding, NHWC, dilation 1:
 * with the batch and channel axes swapped, the filter gradient is itself a
 * convolution of the padded input with dy used as a filter dilated by the
 * stride:  dW = T(conv2d(T(x, [3,1,2,0]), T(dy, [1,2,0,3]), dilation = stride,
 * explicit pads), [1,2,0,3]), cropped to the filter size.
 */
function conv2DBackpropFilterWasm(args: KernelArgs): TensorInfo {
  const { inputs, backend } = args;
  const attrs = args.attrs as unknown as Conv2DBackpropFilterAttrs;
  const x = inputs['x'] as TensorInfo;
  const dy = inputs['dy'] as TensorInfo;
  const info = filterGradInfo(x, attrs);
  const { top, bottom, left, right } = info.padInfo;
  if (info.dataFormat !== 'channelsLast' || top < 0 || bottom < 0 || left < 0 || right < 0) {
    kernelPathCounts.filterFallback++;
    return runOnCpu(Conv2DBackpropFilter, backend, { x, dy }, args.attrs, (s, d, v) => (backend as WasmBackend).makeOutput(s, d, undefined, v));
  }
  kernelPathCounts.filterFast++;
  return withScratch(backend, (keep) => {
    const xt = keep(call(backend, Transpose, { x }, { perm: [3, 1, 2, 0] }));
    const dyt = keep(call(backend, Transpose, { x: dy }, { perm: [1, 2, 0, 3] }));
    const conv = keep(
      call(backend, Conv2D, { x: xt, filter: dyt }, {
        strides: [1, 1],
        pad: [
          [0, 0],
          [top, bottom],
          [left, right],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        dilations: [info.strideHeight, info.strideWidth],
        dimRoundingMode: undefined,
      } as unknown as NamedAttrMap),
    );
    // conv is [Ci, >=fh, >=fw, Co]; crop to the filter when stride rounding left extra rows.
    let src = conv;
    if (conv.shape[1] !== info.filterHeight || conv.shape[2] !== info.filterWidth) {
      src = keep(call(backend, Slice, { x: conv }, { begin: [0, 0, 0, 0], size: [info.inChannels, info.filterHeight, info.filterWidth, info.outChannels] }));
    }
    return call(backend, Transpose, { x: src }, { perm: [1, 2, 0, 3] });
  });
}

/**
 * dx for a conv (NHWC, any kernel and stride, any padding whose complement
 * is non-negative): a full correlation of dy with the filter rotated 180
 * degrees and its in/out channels swapped,
 *   dx = conv2d(pad(dy, fh-1-top, fh-1-bottom, ...), T(reverse(W,[0,1]), [0,1,3,2]), valid),
 * where for stride s > 1 dy is first spread out with s - 1 zeros between its
 * pixels (the padded map is H + fh - 1 by W + fw - 1; pixels past it meet no
 * input). So every stride runs on the forward kernel (and its thread pool);
 * strides over the zeros cost s^2 times the multiply-adds, still well ahead
 * of the backend's own single-threaded kernel, which other cases keep.
 */
function makeConv2DBackpropInputWasm(original: KernelFunc) {
  return (args: KernelArgs): TensorInfo => {
    const { inputs, backend } = args;
    const attrs = args.attrs as unknown as Conv2DBackpropInputAttrs;
    const dy = inputs['dy'] as TensorInfo;
    const filter = inputs['filter'] as TensorInfo;
    const fmt = backend_util.convertConv2DDataFormat(attrs.dataFormat);
    const info = backend_util.computeConv2DInfo(
      attrs.inputShape,
      filter.shape as [number, number, number, number],
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      fmt,
    );
    const pt = info.filterHeight - 1 - info.padInfo.top;
    const pb = info.filterHeight - 1 - info.padInfo.bottom;
    const pl = info.filterWidth - 1 - info.padInfo.left;
    const pr = info.filterWidth - 1 - info.padInfo.right;
    const strided = info.strideHeight !== 1 || info.strideWidth !== 1;
    const dyOk = dy.dtype === 'float32' && dy.shape.length === 4 && dy.shape[1] === info.outHeight && dy.shape[2] === info.outWidth;
    if (fmt !== 'channelsLast' || pt < 0 || pl < 0 || (!strided && (pb < 0 || pr < 0)) || (strided && !dyOk)) {
      kernelPathCounts.inputFallback++;
      return original(args) as TensorInfo;
    }
    return withScratch(backend, (keep) => {
      const rev = keep(call(backend, Reverse, { x: filter }, { dims: [0, 1] }));
      const w = keep(call(backend, Transpose, { x: rev }, { perm: [0, 1, 3, 2] }));
      const conv = (x: TensorInfo, pad: [number, number, number, number]) =>
        call(backend, Conv2D, { x, filter: w }, {
          strides: [1, 1],
          pad: [
            [0, 0],
            [pad[0], pad[1]],
            [pad[2], pad[3]],
            [0, 0],
          ],
          dataFormat: 'NHWC',
          dilations: [1, 1],
          dimRoundingMode: undefined,
        } as unknown as NamedAttrMap);
      if (!strided) {
        kernelPathCounts.inputFast++;
        return conv(dy, [pt, pb, pl, pr]);
      }
      kernelPathCounts.inputStrided++;
      const { batchSize: n, inHeight: h, inWidth: wd, outHeight: oh, outWidth: ow, outChannels: co, strideHeight: sh, strideWidth: sw } = info;
      const hp = h + info.filterHeight - 1;
      const wp = wd + info.filterWidth - 1;
      const wb = backend as WasmBackend;
      const spread = keep(wb.makeOutput([n, hp, wp, co], 'float32'));
      // Views after the allocation above, which may grow (and so replace) the heap.
      const dst = wb.typedArrayFromHeap(spread);
      const src = wb.typedArrayFromHeap(dy);
      dst.fill(0);
      for (let b = 0; b < n; b++)
        for (let r = 0; r < oh && pt + r * sh < hp; r++)
          for (let c = 0; c < ow && pl + c * sw < wp; c++) {
            const from = ((b * oh + r) * ow + c) * co;
            dst.set(src.subarray(from, from + co), ((b * hp + pt + r * sh) * wp + pl + c * sw) * co);
          }
      return conv(spread, [0, 0, 0, 0]);
    });
  };
}

let registered = false;

/**
 * Replaces the wasm backend's kernel `name` with `make(original)`, keeping the
 * original's setup function so the backend still initialises it; registers
 * `make(undefined)` where the backend has no such kernel.
 */
function replaceKernel(name: string, make: (original: KernelFunc | undefined) => KernelFunc): void {
  const orig = getKernel(name, WASM);
  if (orig !== undefined) unregisterKernel(name, WASM);
  const cfg: KernelConfig = { kernelName: name, backendName: WASM, kernelFunc: make(orig?.kernelFunc) };
  if (orig?.setupFunc) cfg.setupFunc = orig.setupFunc;
  registerKernel(cfg);
}

function required(name: string, k: KernelFunc | undefined): KernelFunc {
  if (k === undefined) throw new Error(`tfjs-backend-wasm has no ${name} kernel to fall back on`);
  return k;
}

/**
 * Registers cvc's training kernels for the wasm backend (idempotent). Call
 * before or after the backend is initialised.
 */
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  registered = true;
  replaceKernel(Conv2D, (o) => makeConv2DKernel(required(Conv2D, o)));
  replaceKernel(BatchMatMul, (o) => makeBatchMatMulKernel(required(BatchMatMul, o)));
  // cvc's one-pass kernel, with the transpose formulation (on XNNPACK) where that kernel is not in use.
  replaceKernel(Conv2DBackpropFilter, () => makeConv2DBackpropFilterKernel(conv2DBackpropFilterWasm as unknown as KernelFunc));
  replaceKernel(Conv2DBackpropInput, (o) => makeConv2DBackpropInputWasm(required(Conv2DBackpropInput, o)) as unknown as KernelFunc);
  replaceKernel(MaxPoolGrad, () => maxPoolGradKernel as unknown as KernelFunc);
  replaceKernel(Identity, (o) => makeIdentityKernel(required(Identity, o)));
  replaceKernel(Cast, (o) => makeCastKernel(required(Cast, o)));
  replaceKernel(Sum, (o) => makeLeadingReduceKernel('sum', required(Sum, o)));
  replaceKernel(Mean, (o) => makeLeadingReduceKernel('mean', required(Mean, o)));
  replaceKernel(Tile, (o) => makeTileKernel(required(Tile, o)));
  replaceKernel(FusedBatchNorm, (o) => makeBatchNormKernel(required(FusedBatchNorm, o)));
  replaceKernel(ResizeNearestNeighborGrad, (o) => makeResizeNearestGradKernel(required(ResizeNearestNeighborGrad, o)));
  replaceKernel(SplitV, (o) => makeSplitLastKernel(required(SplitV, o)));
  replaceKernel(Concat, (o) => makeConcatLastKernel(required(Concat, o)));
  registerWasmElementwiseKernels();
}
