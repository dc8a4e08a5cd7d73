#!/usr/bin/env node
// npm run bench:step [-- --models seed-mnist,seed-cifar] [--steps N] [--top K]
//
// One training step (batch 32, Adam, the seed's loss) on the wasm backend, timed
// over N steps (default 10, after 2 warm-ups) twice in the same process: with
// cvc's elementwise kernels (src/wasm-elementwise.ts: Add, Sub, Multiply,
// FusedConv2D) and with tfjs-backend-wasm's own (elementwiseSwitch.enabled =
// false), alternating, best of 3 rounds each. Then the K most expensive kernels
// (name and input shapes) of one step with cvc's kernels. Last lines:
//   RESULT name=step model=seed-mnist base_ms=… elementwise_ms=… speedup=…
import { parseArgs } from 'node:util';
import { initBackend, tf, elementwiseSwitch, elementwiseCounts } from '../packages/tfjs-runtime/dist/index.js';
import { FoldTrainer, batchTensor, computeLoss } from '../packages/model/dist/index.js';
import { randomImageSet } from '../packages/data/dist/testing.js';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: 'seed-mnist,seed-cifar' },
    steps: { type: 'string', default: '10' },
    top: { type: 'string', default: '15' },
  },
});
const steps = Number(values.steps);
const shapes = { 'seed-mnist': [28, 28, 1], 'seed-cifar': [32, 32, 3] };
const backend = await initBackend('wasm');
console.log(`backend: ${backend.name}, ${backend.threads ?? 1} thread(s), convolutions: ${backend.conv}`);

const lines = [];
for (const model of values.models.split(',')) {
  const [h, w, c] = shapes[model];
  const set = randomImageSet(64, h, w, c, 1);
  const trainer = FoldTrainer.create({ model, epochs: 1, batchSize: 32, seed: 1 });
  const vars = trainer.net.model.trainableWeights.map((v) => v.read());
  const opt = tf.train.adam(1e-4);
  const step = () =>
    tf.tidy(() => {
      const x = batchTensor(set, undefined, 0, 32);
      opt.minimize(() => computeLoss(trainer.config.loss, trainer.net.model.apply(x, { training: true }), x).loss, false, vars);
    });
  const time = (enabled) => {
    elementwiseSwitch.enabled = enabled;
    step();
    step();
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) step();
    return (performance.now() - t0) / steps;
  };
  const base = [];
  const ours = [];
  for (let r = 0; r < 3; r++) {
    base.push(time(false));
    ours.push(time(true));
  }
  const before = { ...elementwiseCounts };
  const prof = await tf.profile(step);
  const calls = Object.fromEntries(Object.entries(elementwiseCounts).map(([k, v]) => [k, v - before[k]]));
  const by = new Map();
  for (const k of prof.kernels) {
    const key = `${k.name} ${k.inputShapes.map((s) => JSON.stringify(s)).join(' ')}`;
    const e = by.get(key) ?? { ms: 0, n: 0 };
    e.ms += k.kernelTimeMs;
    e.n++;
    by.set(key, e);
  }
  const total = [...by.values()].reduce((a, b) => a + b.ms, 0);
  console.log(
    `${model}: step ${Math.min(...base).toFixed(1)} ms with tfjs-backend-wasm's elementwise kernels (runs ${base.map((v) => v.toFixed(1)).join(' ')}),`,
  );
  console.log(
    `  ${Math.min(...ours).toFixed(1)} ms with cvc's (runs ${ours.map((v) => v.toFixed(1)).join(' ')}); cvc's kernels in one step: ${JSON.stringify(calls)}`,
  );
  console.log(`  profile of one step with cvc's kernels (kernel time ${total.toFixed(1)} ms):`);
  for (const [n, e] of [...by].sort((a, b) => b[1].ms - a[1].ms).slice(0, Number(values.top))) {
    console.log(`    ${e.ms.toFixed(2).padStart(8)} ms ${String(e.n).padStart(4)} calls  ${n}`);
  }
  const b = Math.min(...base);
  const o = Math.min(...ours);
  lines.push(`RESULT name=step model=${model} batch=32 base_ms=${b.toFixed(1)} elementwise_ms=${o.toFixed(1)} speedup=${(b / o).toFixed(3)}`);
  trainer.dispose();
}
for (const l of lines) console.log(l);
