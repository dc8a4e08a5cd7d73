import { backend_util, type MaxPoolGradAttrs, type TensorInfo } from '@tensorflow/tfjs-core';
import type { KernelArgs, WasmBackend } from './kernel-utils.js';
import { kernelsFor, ptr, type ConvBackend } from './wasm-conv.js';

/** How often the MaxPoolGrad kernel below ran; counted for tests. */
export const poolPathCounts = { maxPoolGrad: 0, maxPoolGradSimd: 0 };

/**
 * MaxPoolGrad for NHWC float32, any window, stride and padding (dilation 1):
 * each window's gradient goes to the first position holding its maximum, in
 * row-major window order (the cpu backend's and TensorFlow's rule; windows
 * with only NaN or -Infinity pass nothing), summed where windows overlap. One
 * pass over the windows: cvc's SIMD kernel (max_pool_grad in csrc/conv.c, 4
 * channels at a time), or this JavaScript loop on the wasm heap where cvc's
 * kernels are not in use. For a batch of 32 28x28x32 activations: SIMD 2 ms,
 * JavaScript 9 ms, tfjs-backend-wasm's own kernel (which also sends ties to
 * the last maximum) 28 ms.
 */
function maxPoolGradWasm(args: KernelArgs): TensorInfo {
  const backend = args.backend as WasmBackend;
  const dy = args.inputs['dy'] as TensorInfo;
  const input = args.inputs['input'] as TensorInfo;
  const attrs = args.attrs as unknown as MaxPoolGradAttrs;
  const info = backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  poolPathCounts.maxPoolGrad++;
  const dx = backend.makeOutput(input.shape.slice(), 'float32');
  const k = kernelsFor(backend as ConvBackend);
  if (k !== undefined && input.dtype === 'float32' && info.dilationHeight === 1 && info.dilationWidth === 1) {
    poolPathCounts.maxPoolGradSimd++;
    const cb = backend as ConvBackend;
    k.max_pool_grad(
      ptr(cb, input),
      info.batchSize,
      info.inHeight,
      info.inWidth,
      info.inChannels,
      ptr(cb, dy),
      info.outHeight,
      info.outWidth,
      info.filterHeight,
      info.filterWidth,
      info.strideHeight,
      info.strideWidth,
      info.padInfo.top,
      info.padInfo.left,
      ptr(cb, dx),
    );
    return dx;
  }
  // Views are taken after the allocation above (which may grow, and so replace, the heap).
  const xv = backend.typedArrayFromHeap(input);
  const dyv = backend.typedArrayFromHeap(dy);
  const dxv = backend.typedArrayFromHeap(dx);
  dxv.fill(0);
  const { batchSize, inHeight, inWidth, inChannels: ch, outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  // Offsets (in elements) of the window's in-bounds positions from its first row and column, in row-major order.
  const offsets = new Int32Array(filterHeight * filterWidth);
  for (let b = 0; b < batchSize; b++) {
    for (let yr = 0; yr < outHeight; yr++) {
      const r0 = yr * strideHeight - top;
      for (let yc = 0; yc < outWidth; yc++) {
        const c0 = yc * strideWidth - left;
        let n = 0;
        for (let wr = 0; wr < filterHeight; wr++) {
          const xr = r0 + wr;
          if (xr < 0 || xr >= inHeight) continue;
          for (let wc = 0; wc < filterWidth; wc++) {
            const xc = c0 + wc;
            if (xc >= 0 && xc < inWidth) offsets[n++] = ((b * inHeight + xr) * inWidth + xc) * ch;
          }
        }
        if (n === 0) continue;
        const g = ((b * outHeight + yr) * outWidth + yc) * ch;
        const first = offsets[0] as number;
        for (let d = 0; d < ch; d++) {
          let m = xv[first + d] as number;
          let p = first + d;
          for (let i = 1; i < n; i++) {
            const q = (offsets[i] as number) + d;
            const v = xv[q] as number;
            // Strictly greater: the first maximum keeps the gradient; NaN never wins, and a window of only NaN or -Infinity passes nothing.
            if (v > m || (m !== m && v === v)) {
              m = v;
              p = q;
            }
          }
          if (m === m && m !== -Infinity) dxv[p] = (dxv[p] as number) + (dyv[g + d] as number);
        }
      }
    }
  }
  return dx;
}

/** Registered for the wasm backend by registerWasmTrainingKernels. */
export const maxPoolGradKernel = maxPoolGradWasm;
