import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng } from '@cvc/core';
import { tf, initBackend, kernelPathCounts, convPathCounts, selectWasmConv, WASM_CONV_CHOICES, type WasmConvImpl } from './index.js';
import { relErr } from './test-utils.js';

await initBackend('cpu');
await initBackend('wasm');
const rng = createRng(1234);
const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);

/** Both backends are initialised above, so switching between them is synchronous. */
function useBackend(name: string): void {
  void tf.setBackend(name);
  assert.equal(tf.getBackend(), name);
}

interface Case {
  k: number;
  ci: number;
  co: number;
  batch: number;
  h: number;
  w: number;
  stride: number;
  pad: 'same' | 'valid';
}

/** Gradients of sum(conv(x, W) * G) w.r.t. x and W on one backend (G fixed random weights). */
function convGrads(backend: string, c: Case, xv: Float32Array, wv: Float32Array, gv: Float32Array): { dx: Float32Array; dw: Float32Array } {
  useBackend(backend);
  return tf.tidy(() => {
    const x = tf.tensor4d(xv, [c.batch, c.h, c.w, c.ci]);
    const w = tf.tensor4d(wv, [c.k, c.k, c.ci, c.co]);
    const outShape = tf.conv2d(x, w, c.stride, c.pad).shape;
    const g = tf.tensor(
      gv.subarray(
        0,
        outShape.reduce((a, b) => a * b, 1),
      ),
      outShape,
    );
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), g)))([x, w]);
    return { dx: (dx as tf.Tensor).dataSync() as Float32Array, dw: (dw as tf.Tensor).dataSync() as Float32Array };
  });
}

function check(c: Case): void {
  const xv = rand(c.batch * c.h * c.w * c.ci);
  const wv = rand(c.k * c.k * c.ci * c.co);
  const gv = rand(c.batch * c.h * c.w * c.co);
  const ref = convGrads('cpu', c, xv, wv, gv);
  const got = convGrads('wasm', c, xv, wv, gv);
  const ex = relErr(got.dx, ref.dx);
  const ew = relErr(got.dw, ref.dw);
  assert.ok(ex < 1e-4, `dx rel err ${ex} for ${JSON.stringify(c)}`);
  assert.ok(ew < 1e-4, `dW rel err ${ew} for ${JSON.stringify(c)}`);
}

/** Runs `fn` with the wasm backend's convolutions from `impl`, then restores the default. */
function withConv(impl: WasmConvImpl, fn: () => void): void {
  assert.equal(selectWasmConv(impl), impl);
  try {
    fn();
  } finally {
    selectWasmConv('auto');
  }
}

const IMPLS: WasmConvImpl[] = ['relaxed-simd', 'simd', 'xnnpack'];

function forward(backend: string, c: Case, xv: Float32Array, wv: Float32Array): Float32Array {
  useBackend(backend);
  return tf.tidy(
    () => tf.conv2d(tf.tensor4d(xv, [c.batch, c.h, c.w, c.ci]), tf.tensor4d(wv, [c.k, c.k, c.ci, c.co]), c.stride, c.pad).dataSync() as Float32Array,
  );
}

function checkForward(c: Case): void {
  const xv = rand(c.batch * c.h * c.w * c.ci);
  const wv = rand(c.k * c.k * c.ci * c.co);
  const e = relErr(forward('wasm', c, xv, wv), forward('cpu', c, xv, wv));
  assert.ok(e < 1e-4, `conv2d rel err ${e} for ${JSON.stringify(c)}`);
}

test("the default convolution kernels are cvc's relaxed-SIMD ones on this Node.js", () => {
  assert.deepEqual(WASM_CONV_CHOICES, ['auto', 'relaxed-simd', 'simd', 'xnnpack']);
  assert.equal(selectWasmConv('auto'), 'relaxed-simd');
  assert.throws(() => selectWasmConv('fast'), /CVC_WASM_CONV.*unknown convolution kernels 'fast'.*auto, relaxed-simd, simd, xnnpack/);
});

for (const impl of ['relaxed-simd', 'simd'] as const) {
  test(`${impl}: conv2d matches the cpu backend for every channel count, odd sizes, strides 1-3, both paddings`, () => {
    withConv(impl, () => {
      const before = { ...convPathCounts };
      for (const co of [1, 2, 3, 4, 5, 6, 8, 12, 32]) {
        checkForward({ k: 3, ci: 3, co, batch: 2, h: 7, w: 9, stride: 1, pad: 'same' });
      }
      for (const k of [1, 2, 3, 4, 5, 7]) {
        for (const pad of ['same', 'valid'] as const) {
          for (const stride of [1, 2, 3]) {
            checkForward({ k, ci: 1, co: 8, batch: 1, h: 11, w: 10, stride, pad });
            checkForward({ k, ci: 5, co: 3, batch: 3, h: 9, w: 7, stride, pad });
            checkForward({ k, ci: 16, co: 12, batch: 2, h: 14, w: 13, stride, pad });
          }
        }
      }
      // Output widths 1..9 exercise every remainder of the 4-pixel tile.
      for (let w = 1; w <= 9; w++) checkForward({ k: 3, ci: 4, co: 16, batch: 1, h: 3, w, stride: 1, pad: 'same' });
      // A seed-sized layer: 7x7, 16 -> 32 channels, on 28x28.
      checkForward({ k: 7, ci: 16, co: 32, batch: 2, h: 28, w: 28, stride: 1, pad: 'same' });
      assert.ok(convPathCounts.forward > before.forward, 'the 4-channel kernel ran');
      assert.ok(convPathCounts.forwardNarrow > before.forwardNarrow, 'the narrow (1-3 channel) kernel ran');
      assert.ok(convPathCounts.forwardPadded > before.forwardPadded, 'the padded-channel path ran');
      assert.equal(convPathCounts.xnnpack, before.xnnpack, 'nothing fell back to XNNPACK');
    });
  });
}

test("padding wider than the kernel (no full correlation) falls back to the backend's input gradient and stays correct", () => {
  const before = kernelPathCounts.inputFallback;
  const xv = rand(2 * 6 * 7 * 3);
  const wv = rand(3 * 3 * 3 * 4);
  const pad = [
    [0, 0],
    [3, 3],
    [3, 4],
    [0, 0],
  ] as [[number, number], [number, number], [number, number], [number, number]];
  const run = (b: string): Float32Array => {
    useBackend(b);
    return tf.tidy(() => {
      const [dx] = tf.grads((x: tf.Tensor) => tf.sum(tf.square(tf.conv2d(x as tf.Tensor4D, tf.tensor4d(wv, [3, 3, 3, 4]), 1, pad))))([
        tf.tensor4d(xv, [2, 6, 7, 3]),
      ]);
      return (dx as tf.Tensor).dataSync() as Float32Array;
    });
  };
  assert.ok(relErr(run('wasm'), run('cpu')) < 1e-4);
  assert.ok(kernelPathCounts.inputFallback > before, 'the fallback ran');
});

test('dilated convolutions go to XNNPACK and stay correct', () => {
  const before = convPathCounts.xnnpack;
  const xv = rand(2 * 9 * 9 * 3);
  const wv = rand(3 * 3 * 3 * 4);
  const run = (b: string): Float32Array => {
    useBackend(b);
    return tf.tidy(() => tf.conv2d(tf.tensor4d(xv, [2, 9, 9, 3]), tf.tensor4d(wv, [3, 3, 3, 4]), 1, 'same', 'NHWC', 2).dataSync() as Float32Array);
  };
  assert.ok(relErr(run('wasm'), run('cpu')) < 1e-4);
  assert.ok(convPathCounts.xnnpack > before);
});

for (const impl of IMPLS) {
  test(`${impl}: conv filter and input gradients match the cpu backend: kernels 1,3,5,7, both paddings`, () => {
    withConv(impl, () => {
      const before = { ...kernelPathCounts, ...convPathCounts };
      for (const k of [1, 3, 5, 7]) {
        for (const pad of ['same', 'valid'] as const) {
          check({ k, ci: 1, co: 4, batch: 1, h: 9, w: 9, stride: 1, pad });
          check({ k, ci: 5, co: 3, batch: 3, h: 11, w: 8, stride: 1, pad });
          check({ k, ci: 16, co: 8, batch: 2, h: 14, w: 14, stride: 1, pad });
          check({ k, ci: 3, co: 6, batch: 2, h: 7, w: 10, stride: 1, pad });
        }
      }
      if (impl === 'xnnpack') {
        assert.ok(kernelPathCounts.filterFast > before.filterFast && kernelPathCounts.inputFast > before.inputFast, 'fast paths were taken');
        assert.equal(kernelPathCounts.filterFallback, before.filterFallback);
      } else {
        assert.ok(convPathCounts.filter > before.filter, 'the filter-gradient kernel ran');
        assert.ok(convPathCounts.filterNarrow > before.filterNarrow, 'the narrow filter-gradient kernel ran');
        assert.ok(convPathCounts.filterPadded > before.filterPadded, 'the padded-channel filter gradient ran');
        assert.equal(kernelPathCounts.filterFast, before.filterFast, 'the transpose formulation was not needed');
        assert.ok(kernelPathCounts.inputFast > before.inputFast, 'input gradients ran as convolutions');
        assert.equal(convPathCounts.xnnpack, before.xnnpack, 'nothing fell back to XNNPACK');
      }
    });
  });
}

test('filter gradients of a seed-sized layer over many rows keep float32 accuracy', () => {
  // 7x7, 16 -> 32 on 2x28x28 and the 1-channel reconstruction layer: long reductions (1,568 pixels).
  check({ k: 7, ci: 16, co: 32, batch: 2, h: 28, w: 28, stride: 1, pad: 'same' });
  check({ k: 3, ci: 32, co: 1, batch: 2, h: 28, w: 28, stride: 1, pad: 'same' });
  check({ k: 7, ci: 1, co: 32, batch: 2, h: 28, w: 28, stride: 1, pad: 'same' });
});

for (const impl of IMPLS) {
  test(`${impl}: odd shapes, even kernels and strides 2 and 3 are handled correctly`, () => {
    withConv(impl, () => {
      const before = { ...kernelPathCounts };
      check({ k: 2, ci: 3, co: 2, batch: 2, h: 7, w: 5, stride: 1, pad: 'same' });
      check({ k: 4, ci: 2, co: 3, batch: 1, h: 9, w: 10, stride: 1, pad: 'same' });
      check({ k: 3, ci: 3, co: 5, batch: 2, h: 8, w: 8, stride: 2, pad: 'same' });
      check({ k: 3, ci: 2, co: 2, batch: 3, h: 9, w: 7, stride: 2, pad: 'valid' });
      check({ k: 5, ci: 4, co: 3, batch: 1, h: 13, w: 11, stride: 2, pad: 'same' });
      check({ k: 3, ci: 4, co: 8, batch: 2, h: 10, w: 11, stride: 3, pad: 'same' });
      // Strided input gradients run as a convolution over dy spread out by the stride (or, with XNNPACK, the same).
      assert.ok(kernelPathCounts.inputStrided > before.inputStrided);
    });
  });
}

test('a transposed convolution (Conv2DBackpropInput as a forward op) matches the cpu backend', () => {
  const dy = rand(2 * 4 * 4 * 3);
  const w = rand(3 * 3 * 5 * 3);
  const run = (b: string): Float32Array => {
    useBackend(b);
    return tf.tidy(() => tf.conv2dTranspose(tf.tensor4d(dy, [2, 4, 4, 3]), tf.tensor4d(w, [3, 3, 5, 3]), [2, 8, 8, 5], 2, 'same').dataSync() as Float32Array);
  };
  assert.ok(relErr(run('wasm'), run('cpu')) < 1e-4);
});

test('the convolution kernels leak no tensors and no wasm memory', () => {
  useBackend('wasm');
  const mem = (): number => (tf.backend() as unknown as { wasm: { asm: { memory: { buffer: ArrayBuffer } } } }).wasm.asm.memory.buffer.byteLength;
  // Padded inputs (about 300 KB each) and channel-padded outputs are scratch buffers: 60 calls would grow the heap by 18 MB if one leaked.
  const big: Case = { k: 3, ci: 16, co: 6, batch: 4, h: 32, w: 32, stride: 1, pad: 'same' };
  const bx = rand(4 * 32 * 32 * 16);
  const bw = rand(3 * 3 * 16 * 6);
  const bg = rand(4 * 32 * 32 * 6);
  convGrads('wasm', big, bx, bw, bg);
  const heap0 = mem();
  for (let i = 0; i < 20; i++) convGrads('wasm', big, bx, bw, bg);
  assert.equal(mem(), heap0, 'the wasm heap did not grow');
  const c: Case = { k: 3, ci: 4, co: 4, batch: 2, h: 8, w: 8, stride: 1, pad: 'same' };
  const xv = rand(2 * 8 * 8 * 4);
  const wv = rand(3 * 3 * 4 * 4);
  const gv = rand(2 * 8 * 8 * 4);
  convGrads('wasm', c, xv, wv, gv);
  const n0 = tf.memory().numTensors;
  const bytes0 = (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
  for (let i = 0; i < 3; i++) convGrads('wasm', c, xv, wv, gv);
  assert.equal(tf.memory().numTensors, n0);
  assert.equal((tf.backend() as unknown as { numDataIds(): number }).numDataIds(), bytes0, 'no backend buffers left behind');
});

test('BatchMatMul runs on the convolution kernel and matches the cpu backend (transposes, batches, odd sizes)', () => {
  const before = { ...convPathCounts };
  const cases: [number[], number[], boolean, boolean][] = [
    [[32, 392], [392, 128], false, false],
    [[32, 128], [392, 128], false, true],
    [[32, 392], [32, 128], true, false],
    [[7, 5], [3, 5], false, true],
    [[5, 7], [5, 10], true, false],
    [[3, 4, 6], [3, 6, 2], false, false],
    [[2, 6, 3], [2, 1, 6], true, true],
    [[1, 1], [1, 1], false, false],
  ];
  for (const impl of ['relaxed-simd', 'simd'] as const) {
    withConv(impl, () => {
      for (const [sa, sb, ta, tb] of cases) {
        const av = rand(sa.reduce((p, d) => p * d, 1));
        const bv = rand(sb.reduce((p, d) => p * d, 1));
        const run = (b: string): { shape: number[]; v: Float32Array } => {
          useBackend(b);
          return tf.tidy(() => {
            const r = tf.matMul(tf.tensor(av, sa), tf.tensor(bv, sb), ta, tb);
            return { shape: r.shape, v: r.dataSync() as Float32Array };
          });
        };
        const got = run('wasm');
        const ref = run('cpu');
        const what = `${sa.join('x')}${ta ? 'ᵀ' : ''} by ${sb.join('x')}${tb ? 'ᵀ' : ''}`;
        assert.deepEqual(got.shape, ref.shape, what);
        assert.ok(relErr(got.v, ref.v) < 1e-5, `${what}: rel err ${relErr(got.v, ref.v)}`);
      }
    });
  }
  assert.equal(convPathCounts.matMul - before.matMul, 2 * cases.length, "every product ran on cvc's kernel");
});
