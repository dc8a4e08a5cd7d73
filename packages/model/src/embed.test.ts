// The embedding pass on the wasm backend (cvc's FusedConv2D and elementwise kernels at inference)
// gives the cpu backend's codes, whatever the batch size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomImageSet } from '@cvc/data/testing';
import { elementwiseCounts, initBackend, tf } from '@cvc/tfjs-runtime';
import { embedImages, FoldTrainer } from './index.js';

await initBackend('cpu');
await initBackend('wasm');

const relErr = (a: Float32Array, b: Float32Array): number => {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs((a[i] as number) - (b[i] as number)));
    scale = Math.max(scale, Math.abs(b[i] as number));
  }
  return diff / Math.max(scale, 1e-12);
};

for (const [model, [h, w, c]] of [
  ['seed-mnist', [28, 28, 1]],
  ['seed-cifar', [32, 32, 3]],
] as const) {
  test(`${model}: embedImages on wasm equals the cpu backend's codes, in batches of any size`, async () => {
    const set = randomImageSet(23, h, w, c, 5);
    await tf.setBackend('wasm');
    const trainer = FoldTrainer.create({ model, epochs: 1, seed: 3 });
    const before = elementwiseCounts.fusedConv;
    const a = embedImages(trainer.net.encoder, set, 10);
    assert.ok(elementwiseCounts.fusedConv > before, "cvc's FusedConv2D ran");
    const b = embedImages(trainer.net.encoder, set, 23);
    assert.deepEqual([a.n, a.d], [23, model === 'seed-mnist' ? 10 : 128]);
    assert.ok(relErr(a.data, b.data) < 1e-5, `batch sizes agree (${relErr(a.data, b.data)})`);
    const weights = trainer.net.model.getWeights().map((t) => ({ shape: t.shape, values: t.dataSync().slice() }));
    trainer.dispose();
    await tf.setBackend('cpu');
    const ref = FoldTrainer.create({ model, epochs: 1, seed: 3 });
    ref.net.model.setWeights(weights.map((t) => tf.tensor(t.values, t.shape)));
    const want = embedImages(ref.net.encoder, set, 23);
    ref.dispose();
    await tf.setBackend('wasm');
    assert.ok(relErr(a.data, want.data) < 1e-4, `wasm vs cpu rel err ${relErr(a.data, want.data)}`);
  });
}
