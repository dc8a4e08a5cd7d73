import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '@cvc/tfjs-runtime';
import { computeLoss } from './index.js';

await initBackend('wasm');

test('mse and mse-cosine match hand-computed values', () => {
  // Two "images" of 4 pixels.
  const x = tf.tensor4d([1, 0, 0, 1, 0.5, 0.5, 0.5, 0.5], [2, 2, 2, 1]);
  const y = tf.tensor4d([1, 0, 0, 0, 0.5, 0.5, 0.5, 0], [2, 2, 2, 1]);
  const mse = (1 + 0.25) / 8;
  const cos1 = 1 / (1 * Math.SQRT2);
  const cos2 = 0.75 / (Math.sqrt(0.75) * 1);
  const a = computeLoss('mse', y, x);
  assert.ok(Math.abs((a.loss.dataSync()[0] as number) - mse) < 1e-6);
  const b = computeLoss('mse-cosine', y, x);
  assert.ok(Math.abs((b.mse.dataSync()[0] as number) - mse) < 1e-6);
  assert.ok(Math.abs((b.cosine?.dataSync()[0] as number) - (cos1 + cos2) / 2) < 1e-6);
  assert.ok(Math.abs((b.loss.dataSync()[0] as number) - (mse + 1 - (cos1 + cos2) / 2)) < 1e-6);
  // An all-zero reconstruction has cosine 0 (norm clamped), not NaN.
  const z = computeLoss('mse-cosine', tf.zerosLike(x), x);
  assert.ok(Number.isFinite(z.loss.dataSync()[0]));
});
