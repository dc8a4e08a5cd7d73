// A custom config (strided convolutions, 64x64x3, BN before the activation) trains on cvc's wasm
// kernels where they apply and falls back cleanly where they do not: one training step's loss and
// gradients equal the cpu backend's, and a few steps on tiny data lower the loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng } from '@cvc/core';
import { randomImageSet } from '@cvc/data/testing';
import { convPathCounts, initBackend, kernelPathCounts, tf, wasmConvImpl } from '@cvc/tfjs-runtime';
import { buildAutoencoder, computeLoss, FoldTrainer, modelConfigSchema, type ResolvedModelConfig } from './index.js';

await initBackend('cpu');
await initBackend('wasm');

// Bilinear up-sampling: the cpu backend's ResizeNearestNeighborGrad is off for larger maps (cvc's wasm
// kernel is exact, wasm-small-kernels.test.ts), so the cpu reference holds only with bilinear.
const config = modelConfigSchema.parse({
  input: { height: 64, width: 64, channels: 3 },
  encoder: [
    { filters: 4, kernel: 5, stride: 2 },
    { filters: 8, kernel: 3, stride: 2, batchNorm: 'before' },
    { filters: 8, kernel: 3, pool: 2 },
  ],
  dense: [16],
  codeSize: 8,
  upsample: 'bilinear',
  outputActivation: 'sigmoid',
}) as ResolvedModelConfig;

const rng = createRng(99);
const H = config.input.height;
const C = config.input.channels;
const pixels = Float32Array.from({ length: 2 * H * H * C }, () => rng.next());

/** Loss and gradients (by weight name) of one training-mode step from the given weights, on `backend`. */
function step(backend: string, weights?: Map<string, Float32Array>): { loss: number; grads: Map<string, Float32Array>; weights: Map<string, Float32Array> } {
  void tf.setBackend(backend);
  assert.equal(tf.getBackend(), backend);
  const net = buildAutoencoder(config, { seed: 5 });
  if (weights) for (const w of net.model.weights) w.write(tf.tensor(weights.get(w.originalName) as Float32Array, w.shape as number[]));
  const start = new Map(net.model.weights.map((w) => [w.originalName, w.read().dataSync() as Float32Array]));
  const vars = net.model.trainableWeights.map((w) => w.read() as tf.Variable);
  const x = tf.tensor4d(pixels, [2, H, H, C]);
  const { value, grads } = tf.variableGrads(() => computeLoss(config.loss, net.model.apply(x, { training: true }) as tf.Tensor, x).loss, vars);
  const names = new Map(net.model.trainableWeights.map((w) => [(w.read() as tf.Variable).name, w.originalName]));
  const out = new Map(Object.entries(grads).map(([k, g]) => [names.get(k) ?? k, g.dataSync() as Float32Array]));
  const loss = value.dataSync()[0] as number;
  tf.dispose([x, value, ...Object.values(grads)]);
  net.model.dispose();
  return { loss, grads: out, weights: start };
}

test('one step of a strided 64x64x3 custom config: wasm (cvc kernels + clean fallbacks) equals cpu', () => {
  const cpu = step('cpu');
  const before = { ...convPathCounts };
  const beforeK = { ...kernelPathCounts };
  const wasm = step('wasm', cpu.weights);
  assert.ok(Math.abs(wasm.loss - cpu.loss) < 1e-5 * Math.max(1, cpu.loss), `loss ${wasm.loss} vs ${cpu.loss}`);
  assert.equal(wasm.grads.size, cpu.grads.size);
  for (const [name, g] of cpu.grads) {
    const h = wasm.grads.get(name);
    assert.ok(h, `wasm has a gradient for ${name}`);
    let diff = 0;
    // A conv bias right before batch-norm has a zero gradient up to rounding: compare it on an absolute floor.
    let scale = 1e-4;
    g.forEach((v, i) => {
      diff = Math.max(diff, Math.abs(v - (h[i] as number)));
      scale = Math.max(scale, Math.abs(v));
    });
    assert.ok(diff / scale < 2e-3, `${name}: max diff ${diff} against max |g| ${scale}`);
  }
  if (wasmConvImpl() !== 'xnnpack') {
    const ran = (k: keyof typeof convPathCounts): number => convPathCounts[k] - before[k];
    assert.ok(ran('forward') + ran('forwardNarrow') + ran('forwardPadded') > 0, "strided forward convolutions ran on cvc's kernels");
    assert.ok(ran('filter') + ran('filterNarrow') + ran('filterPadded') > 0, "filter gradients ran on cvc's kernels");
    assert.ok(kernelPathCounts.inputStrided > beforeK.inputStrided, "a strided conv's input gradient runs on cvc's kernels (dy spread out by the stride)");
  }
});

test('a few wasm training steps of the custom config on tiny data: finite, decreasing loss', async () => {
  void tf.setBackend('wasm');
  const train = randomImageSet(8, 64, 64, 3, 21);
  const val = randomImageSet(4, 64, 64, 3, 22);
  const t = FoldTrainer.create({ model: 'custom', modelConfig: config, epochs: 4, batchSize: 4, learningRate: 3e-3, seed: 1 });
  const history = await t.fit({ train, val });
  assert.equal(history.length, 4);
  for (const r of history) assert.ok(Number.isFinite(r.loss) && Number.isFinite(r.valLoss), JSON.stringify(r));
  assert.ok((history[3]?.loss ?? Infinity) < (history[0]?.loss ?? 0), `loss ${history.map((r) => r.loss.toFixed(5)).join(' -> ')}`);
  t.dispose();
});
