import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng } from '@cvc/core';
import { tf, initBackend, poolPathCounts, selectWasmConv } from './index.js';
import { relErr } from './test-utils.js';

await initBackend('cpu');
await initBackend('wasm');
const rng = createRng(4321);
const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
/** Few distinct values, so pooling windows have ties. */
const coarse = (n: number): Float32Array => Float32Array.from({ length: n }, () => Math.floor(rng.next() * 3));

function on<T>(backend: string, fn: () => T): T {
  void tf.setBackend(backend);
  assert.equal(tf.getBackend(), backend);
  return fn();
}

interface PoolCase {
  h: number;
  w: number;
  c: number;
  batch: number;
  size: number;
  stride: number;
  pad: 'same' | 'valid';
}

/** d/dx of sum(maxPool(x) * G) on one backend. */
function poolGrad(backend: string, p: PoolCase, xv: Float32Array, gv: Float32Array): Float32Array {
  return on(backend, () =>
    tf.tidy(() => {
      const x = tf.tensor4d(xv, [p.batch, p.h, p.w, p.c]);
      const outShape = tf.maxPool(x, p.size, p.stride, p.pad).shape;
      const g = tf.tensor(
        gv.subarray(
          0,
          outShape.reduce((a, b) => a * b, 1),
        ),
        outShape,
      );
      return tf
        .grad((a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, p.size, p.stride, p.pad), g)))(x)
        .dataSync() as Float32Array;
    }),
  );
}

for (const impl of ['relaxed-simd', 'xnnpack'] as const) {
  // With cvc's kernels in use the SIMD kernel runs; without them (xnnpack), the JavaScript loop.
  const path = impl === 'xnnpack' ? 'JavaScript' : 'SIMD';
  test(`${path} MaxPoolGrad matches the cpu backend: window 2 and 3, strides 1 to 3, both paddings, odd sizes and channels, ties`, () => {
    selectWasmConv(impl);
    try {
      const before = { ...poolPathCounts };
      let cases = 0;
      for (const size of [2, 3]) {
        for (const stride of [1, 2, 3]) {
          for (const pad of ['same', 'valid'] as const) {
            for (const [h, w, c] of [
              [8, 8, 4],
              [7, 9, 5],
              [6, 5, 3],
            ] as const) {
              const p: PoolCase = { h, w, c, batch: 2, size, stride, pad };
              const n = p.batch * h * w * p.c;
              for (const values of [rand(n), coarse(n)]) {
                const gv = rand(n);
                const e = relErr(poolGrad('wasm', p, values, gv), poolGrad('cpu', p, values, gv));
                assert.ok(e < 1e-4, `rel err ${e} for ${JSON.stringify(p)}`);
                cases++;
              }
            }
          }
        }
      }
      assert.equal(poolPathCounts.maxPoolGrad - before.maxPoolGrad, cases, "every case ran cvc's kernel");
      assert.equal(poolPathCounts.maxPoolGradSimd - before.maxPoolGradSimd, impl === 'xnnpack' ? 0 : cases);
    } finally {
      selectWasmConv('auto');
    }
  });
}

test('a window of only -Infinity or NaN passes no gradient; NaN never wins a window', () => {
  const inf = Number.NEGATIVE_INFINITY;
  // One 2x2 window, 4 channels: NaN then values, all -Infinity, all NaN, a tie.
  const x = Float32Array.from([Number.NaN, inf, Number.NaN, 1, 2, inf, Number.NaN, 5, 3, inf, Number.NaN, 5, 0, inf, Number.NaN, 5]);
  const run = (impl: 'relaxed-simd' | 'xnnpack') => {
    selectWasmConv(impl);
    try {
      return on('wasm', () =>
        tf.tidy(() =>
          Array.from(
            tf
              .grad((a: tf.Tensor) => tf.sum(tf.maxPool(a as tf.Tensor4D, 2, 2, 'valid')))(tf.tensor4d(x, [1, 2, 2, 4]))
              .dataSync(),
          ),
        ),
      );
    } finally {
      selectWasmConv('auto');
    }
  };
  // Channel 0: NaN, 2, 3, 0 -> position 2; channel 3: 1, 5, 5, 5 -> the first 5 (position 1).
  const expected = [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0];
  assert.deepEqual(run('relaxed-simd'), expected);
  assert.deepEqual(run('xnnpack'), expected);
});

test('the MaxPoolGrad kernel leaks no tensors or buffers', () => {
  const p: PoolCase = { h: 8, w: 8, c: 4, batch: 2, size: 2, stride: 2, pad: 'valid' };
  const xv = rand(2 * 8 * 8 * 4);
  const step = (): void => {
    poolGrad('wasm', p, xv, xv);
  };
  step();
  const n0 = tf.memory().numTensors;
  const ids0 = (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
  for (let i = 0; i < 3; i++) step();
  assert.equal(tf.memory().numTensors, n0);
  assert.equal((tf.backend() as unknown as { numDataIds(): number }).numDataIds(), ids0, 'no backend buffers left behind');
});
