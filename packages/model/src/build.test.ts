import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '@cvc/tfjs-runtime';
import { buildAutoencoder, countParams, seedPreset } from './index.js';

await initBackend('wasm');

test('seed-mnist has the seed notebook parameter counts', () => {
  const { model, encoder } = buildAutoencoder(seedPreset('seed-mnist'));
  assert.deepEqual(countParams(model), { trainable: 148_515, nonTrainable: 160, total: 148_675 });
  assert.equal(countParams(encoder).total, 67_394);
  assert.deepEqual(model.outputs[0]?.shape, [null, 28, 28, 1]);
  assert.deepEqual(encoder.outputs[0]?.shape, [null, 10]);
  model.dispose();
});

test('seed-cifar has the seed notebook parameter counts', () => {
  const { model, encoder } = buildAutoencoder(seedPreset('seed-cifar'));
  assert.deepEqual(countParams(model), { trainable: 180_371, nonTrainable: 160, total: 180_531 });
  assert.deepEqual(model.outputs[0]?.shape, [null, 32, 32, 3]);
  assert.deepEqual(encoder.outputs[0]?.shape, [null, 128]);
  model.dispose();
});

test('layer order follows SEED-MODELS.md: conv -> ReLU -> BN, nearest up-sampling by default, bilinear selectable', () => {
  const { model } = buildAutoencoder(seedPreset('seed-mnist'));
  const names = model.layers.map((l) => l.name);
  assert.ok(names.indexOf('enc_bn1') === names.indexOf('enc_conv1') + 1);
  const conv1 = model.getLayer('enc_conv1').getConfig();
  assert.equal(conv1['activation'], 'relu');
  assert.equal(conv1['padding'], 'same');
  // Nearest up-sampling is computed inside the next (5x5, 7x7) convolution (up-conv.ts).
  assert.equal(model.getLayer('dec_conv2').getConfig()['interpolation'], 'nearest');
  assert.equal(model.getLayer('dec_conv2').getConfig()['upsample'], 2);
  assert.ok(!names.includes('dec_bn3'), 'no batch-norm after the 32-filter decoder conv');
  model.dispose();
  const bil = buildAutoencoder(seedPreset('seed-mnist', { upsample: 'bilinear' }));
  assert.equal(bil.model.getLayer('dec_up2').getConfig()['interpolation'], 'bilinear');
  const y = bil.model.predict(tf.zeros([1, 28, 28, 1])) as tf.Tensor;
  assert.deepEqual(y.shape, [1, 28, 28, 1]);
  y.dispose();
  bil.model.dispose();
});

test('initialisation is reproducible from the seed', () => {
  const a = buildAutoencoder(seedPreset('seed-mnist'), { seed: 5 });
  const b = buildAutoencoder(seedPreset('seed-mnist'), { seed: 5 });
  const c = buildAutoencoder(seedPreset('seed-mnist'), { seed: 6 });
  const k = (m: tf.LayersModel): Float32Array => m.getLayer('enc_conv2').getWeights()[0]?.dataSync() as Float32Array;
  assert.deepEqual(k(a.model), k(b.model));
  assert.notDeepEqual(k(a.model), k(c.model));
  for (const m of [a, b, c]) m.model.dispose();
});
