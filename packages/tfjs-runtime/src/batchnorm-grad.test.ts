import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng } from '@cvc/core';
import { initBackend, tf } from './index.js';
import { relErr } from './test-utils.js';

await initBackend('wasm');
const rng = createRng(99);
const rand = (shape: number[], lo = -1, hi = 1): tf.Tensor =>
  tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => lo + rng.next() * (hi - lo)),
    shape,
  );

const tensorErr = (a: tf.Tensor, b: tf.Tensor): number => relErr(a.dataSync(), b.dataSync());

test('the FusedBatchNorm gradient matches an elementary-op formulation for every input', () => {
  for (const shape of [
    [4, 5, 6, 3],
    [2, 7, 7, 8],
    [3, 1, 1, 5],
    [6, 4],
  ]) {
    const c = shape[shape.length - 1] as number;
    const x = rand(shape);
    const mean = rand([c]);
    const variance = rand([c], 0.1, 2);
    const scale = rand([c]);
    const offset = rand([c]);
    const dy = rand(shape);
    const eps = 1e-3;
    const fused = (a: tf.Tensor, m: tf.Tensor, v: tf.Tensor, s: tf.Tensor, o: tf.Tensor): tf.Tensor =>
      tf.sum(tf.mul(tf.batchNorm(a, m as tf.Tensor1D, v as tf.Tensor1D, o as tf.Tensor1D, s as tf.Tensor1D, eps), dy));
    const plain = (a: tf.Tensor, m: tf.Tensor, v: tf.Tensor, s: tf.Tensor, o: tf.Tensor): tf.Tensor =>
      tf.sum(tf.mul(tf.add(tf.mul(tf.mul(tf.sub(a, m), tf.rsqrt(tf.add(v, eps))), s), o), dy));
    const got = tf.grads(fused)([x, mean, variance, scale, offset]);
    const want = tf.grads(plain)([x, mean, variance, scale, offset]);
    ['x', 'mean', 'variance', 'scale', 'offset'].forEach((name, i) => {
      const e = tensorErr(got[i] as tf.Tensor, want[i] as tf.Tensor);
      assert.ok(e < 1e-4, `d${name} rel err ${e} for shape ${shape.join('x')}`);
    });
  }
});

test('batch normalisation in training mode (gradient through the batch moments) matches too', () => {
  const x = rand([8, 5, 5, 4]);
  const dy = rand([8, 5, 5, 4]);
  const scale = rand([4]);
  const layerLike =
    (useFused: boolean) =>
    (a: tf.Tensor): tf.Tensor => {
      const { mean, variance } = tf.moments(a, [0, 1, 2]);
      const y = useFused
        ? tf.batchNorm(a, mean, variance, tf.zeros([4]), scale, 1e-3)
        : tf.mul(tf.mul(tf.sub(a, mean), tf.rsqrt(tf.add(variance, 1e-3))), scale);
      return tf.sum(tf.mul(y, dy));
    };
  const e = tensorErr(tf.grad(layerLike(true))(x), tf.grad(layerLike(false))(x));
  assert.ok(e < 1e-4, `dx rel err ${e}`);
});
