// The threaded wasm build on Node worker_threads: it starts with the threads
// asked for, computes what the cpu backend computes, and lets the process exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng } from '@cvc/core';
import { tf, initBackend } from './index.js';
import { relErr } from './test-utils.js';

await initBackend('cpu');
const info = await initBackend('wasm', undefined, { wasmThreads: 2 });
const rng = createRng(99);
const rand = (shape: number[]): tf.Tensor =>
  tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.next() * 2 - 1),
    shape,
  );

test('the wasm backend runs a pool of 2 threads in Node', () => {
  assert.equal(info.name, 'wasm');
  assert.equal(info.threads, 2);
});

test('threaded convolutions and their gradients (our kernels included) equal the cpu backend', () => {
  for (const [k, ci, co, stride, pad] of [
    [3, 8, 16, 1, 'same'],
    [5, 3, 4, 2, 'valid'],
    [3, 16, 8, 2, 'same'],
  ] as const) {
    const x = rand([4, 14, 14, ci]);
    const w = rand([k, k, ci, co]);
    const run = (backend: string): Float32Array[] => {
      void tf.setBackend(backend);
      assert.equal(tf.getBackend(), backend);
      return tf.tidy(() => {
        const f = (a: tf.Tensor, b: tf.Tensor): tf.Tensor => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad)));
        const y = tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, pad);
        const [dx, dw] = tf.grads(f)([x, w]);
        return [y, dx, dw].map((t) => (t as tf.Tensor).dataSync() as Float32Array);
      });
    };
    const ours = run('wasm');
    const ref = run('cpu');
    for (const [i, name] of ['output', 'input gradient', 'filter gradient'].entries()) {
      const e = relErr(ours[i] ?? new Float32Array(), ref[i] ?? new Float32Array(1));
      assert.ok(e < 1e-4, `k${k} ${ci}->${co} stride ${stride} ${pad}: ${name} relative error ${e}`);
    }
    x.dispose();
    w.dispose();
  }
});

test('a bad thread count is a clear error', async () => {
  await assert.rejects(initBackend('wasm', undefined, { wasmThreads: 0 }), /wasm threads: must be an integer 1\.\.64, got 0/);
});
