import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng } from '@cvc/core';
import { tf, initBackend, kernelPathCounts } from './index.js';
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


interface Case { k: number; ci: number; co: number; batch: number; h: number; w: number; stride: number; pad: 'same' | 'valid' }

/** Gradients of sum(conv(x, W) * G) w.r.t. x and W on one backend (G fixed random weights). */
function convGrads(backend: string, c: Case, xv: Float32Array, wv: Float32Array, gv: Float32Array): { dx: Float32Array; dw: Float32Array } {
  useBackend(backend);
  return tf.tidy(() => {
    const x = tf.tensor4d(xv, [c.batch, c.h, c.w, c.ci]);
    const w = tf.tensor4d(wv, [c.k, c.k, c.ci, c.co]);
    const outShape = tf.conv2d(x, w, c.stride, c.pad).shape;
    const g = tf.tensor(gv.subarray(0, outShape.reduce((a, b) => a * b, 1)), outShape);
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

test('conv filter and input gradients match the cpu backend: kernels 1,3,5,7, both paddings', () => {
  const before = { ...kernelPathCounts };
  for (const k of [1, 3, 5, 7]) {
    for (const pad of ['same', 'valid'] as const) {
      check({ k, ci: 1, co: 4, batch: 1, h: 9, w: 9, stride: 1, pad });
      check({ k, ci: 5, co: 3, batch: 3, h: 11, w: 8, stride: 1, pad });
      check({ k, ci: 16, co: 8, batch: 2, h: 14, w: 14, stride: 1, pad });
    }
  }
  assert.ok(kernelPathCounts.filterFast > before.filterFast && kernelPathCounts.inputFast > before.inputFast, 'fast paths were taken');
  assert.equal(kernelPathCounts.filterFallback, before.filterFallback);
});

test('odd shapes, even kernels and stride 2 are handled correctly', () => {
  const before = { ...kernelPathCounts };
  check({ k: 2, ci: 3, co: 2, batch: 2, h: 7, w: 5, stride: 1, pad: 'same' });
  check({ k: 4, ci: 2, co: 3, batch: 1, h: 9, w: 10, stride: 1, pad: 'same' });
  check({ k: 3, ci: 3, co: 5, batch: 2, h: 8, w: 8, stride: 2, pad: 'same' });
  check({ k: 3, ci: 2, co: 2, batch: 3, h: 9, w: 7, stride: 2, pad: 'valid' });
  check({ k: 5, ci: 4, co: 3, batch: 1, h: 13, w: 11, stride: 2, pad: 'same' });
  // Strided input gradients use the backend's own (correct) kernel, never a wrong fast path.
  assert.ok(kernelPathCounts.inputFallback > before.inputFallback);
});

test('a transposed convolution (Conv2DBackpropInput as a forward op) matches the cpu backend', () => {
  const dy = rand(2 * 4 * 4 * 3);
  const w = rand(3 * 3 * 5 * 3);
  const run = (b: string): Float32Array => {
    useBackend(b);
    return tf.tidy(() => tf.conv2dTranspose(tf.tensor4d(dy, [2, 4, 4, 3]), tf.tensor4d(w, [3, 3, 5, 3]), [2, 8, 8, 5], 2, 'same').dataSync() as Float32Array);
  };
  assert.ok(relErr(run('wasm'), run('cpu')) < 1e-4);
});

test('the gradient kernels leak no tensors', () => {
  useBackend('wasm');
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
