#!/usr/bin/env node
// npm run bench:step [-- --models seed-mnist,seed-cifar] [--steps N] [--top K] [--threads T]
//
// One training step (batch 32, Adam, the seed's loss) on the wasm backend, N
// times (default 10, after warm-ups) with cvc's elementwise kernels
// (src/wasm-elementwise.ts: Add, Sub, Multiply, FusedConv2D) and N times with
// tfjs-backend-wasm's own (elementwiseSwitch.enabled = false), alternating step
// by step in the same process; the fastest step of each counts (medians too).
// Then the K most expensive kernels (name and input shapes) of one step with
// cvc's kernels, and the time of the Add/Sub/Multiply/Step/ReLU-gradient kernels per step with each kernel
// set (per kernel call the fastest of 6 steps). Last lines:
//   RESULT name=step model=seed-mnist base_ms=… elementwise_ms=… speedup=… base_median_ms=… elementwise_median_ms=…
//          elementwise_kernels_base_ms=… elementwise_kernels_ms=…
import { parseArgs } from 'node:util';
import { getKernelsForBackend, registerKernel, unregisterKernel } from '@tensorflow/tfjs-core';
import { initBackend, tf, elementwiseSwitch, elementwiseCounts } from '../packages/tfjs-runtime/dist/index.js';
import { FoldTrainer, batchTensor, computeLoss } from '../packages/model/dist/index.js';
import { randomImageSet } from '../packages/data/dist/testing.js';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: 'seed-mnist,seed-cifar' },
    steps: { type: 'string', default: '10' },
    top: { type: 'string', default: '15' },
    threads: { type: 'string', default: '1' },
  },
});
const steps = Number(values.steps);
const shapes = { 'seed-mnist': [28, 28, 1], 'seed-cifar': [32, 32, 3] };
const backend = await initBackend('wasm', undefined, { wasmThreads: Number(values.threads) });
console.log(`backend: ${backend.name}, ${backend.threads ?? 1} thread(s), convolutions: ${backend.conv}`);

// Kernel timing: every wasm kernel wrapped; only outermost calls are timed (a kernel that calls
// others counts once). Per (kernel, input shapes) and call position, the fastest of the profiled
// steps counts: a profile that preemption on a loaded machine does not inflate.
const timing = { on: false, depth: 0, step: 0, rec: new Map() };
for (const k of getKernelsForBackend('wasm')) {
  const f = k.kernelFunc;
  unregisterKernel(k.kernelName, 'wasm');
  registerKernel({
    ...k,
    kernelFunc: (args) => {
      if (!timing.on || timing.depth > 0) return f(args);
      timing.depth++;
      const t0 = performance.now();
      try {
        return f(args);
      } finally {
        const dt = performance.now() - t0;
        timing.depth--;
        const key = `${k.kernelName} ${Object.values(args.inputs)
          .map((i) => (i ? JSON.stringify(i.shape) : '-'))
          .join(' ')}`;
        let e = timing.rec.get(key);
        if (!e) timing.rec.set(key, (e = new Map()));
        const list = e.get(timing.step) ?? [];
        list.push(dt);
        e.set(timing.step, list);
      }
    },
  });
}
/** Runs `step` n times under the timing wrapper; returns [key, calls per step, ms] rows, most expensive first. */
function minProfile(step, n) {
  timing.rec.clear();
  timing.on = true;
  for (timing.step = 0; timing.step < n; timing.step++) step();
  timing.on = false;
  const rows = [];
  for (const [key, per] of timing.rec) {
    const lists = [...per.values()];
    const calls = Math.min(...lists.map((l) => l.length));
    let ms = 0;
    for (let j = 0; j < calls; j++) ms += Math.min(...lists.map((l) => l[j]));
    rows.push([key, calls, ms]);
  }
  return rows.sort((a, b) => b[2] - a[2]);
}
const ELEMENTWISE = new Set(['Add', 'Sub', 'Multiply', 'FusedConv2D', 'Step', 'CvcReluGrad']);
const elementwiseMs = (rows) => rows.filter(([k]) => ELEMENTWISE.has(k.split(' ')[0])).reduce((a, r) => a + r[2], 0);

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
  // Alternate single steps between the two kernel sets, so that load changes hit both alike.
  const base = [];
  const ours = [];
  for (const enabled of [false, true, false, true]) {
    elementwiseSwitch.enabled = enabled;
    step();
  }
  for (let i = 0; i < 2 * steps; i++) {
    const enabled = i % 2 === 1;
    elementwiseSwitch.enabled = enabled;
    const t0 = performance.now();
    step();
    (enabled ? ours : base).push(performance.now() - t0);
  }
  elementwiseSwitch.enabled = true;
  const before = { ...elementwiseCounts };
  step();
  const calls = Object.fromEntries(Object.entries(elementwiseCounts).map(([k, v]) => [k, v - before[k]]));
  elementwiseSwitch.enabled = false;
  const baseRows = minProfile(step, 6);
  elementwiseSwitch.enabled = true;
  const rows = minProfile(step, 6);
  const total = rows.reduce((a, r) => a + r[2], 0);
  const median = (v) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)];
  const ewBase = elementwiseMs(baseRows);
  const ew = elementwiseMs(rows);
  console.log(`${model}: step min ${Math.min(...base).toFixed(1)} / median ${median(base).toFixed(1)} ms with tfjs-backend-wasm's elementwise kernels,`);
  console.log(`  min ${Math.min(...ours).toFixed(1)} / median ${median(ours).toFixed(1)} ms with cvc's; cvc's kernels in one step: ${JSON.stringify(calls)}`);
  console.log(
    `  Add/Sub/Multiply/Step/ReLU-gradient kernel time per step (fastest of 6 steps): ${ewBase.toFixed(2)} ms with tfjs-backend-wasm's, ${ew.toFixed(2)} ms with cvc's`,
  );
  console.log(`  profile of one step with cvc's kernels (fastest of 6 steps per kernel call; kernel time ${total.toFixed(1)} ms):`);
  for (const [n, c, ms] of rows.slice(0, Number(values.top))) console.log(`    ${ms.toFixed(2).padStart(8)} ms ${String(c).padStart(4)} calls  ${n}`);
  const b = Math.min(...base);
  const o = Math.min(...ours);
  lines.push(
    `RESULT name=step model=${model} batch=32 base_ms=${b.toFixed(1)} elementwise_ms=${o.toFixed(1)} speedup=${(b / o).toFixed(3)} base_median_ms=${median(base).toFixed(1)} elementwise_median_ms=${median(ours).toFixed(1)} elementwise_kernels_base_ms=${ewBase.toFixed(2)} elementwise_kernels_ms=${ew.toFixed(2)}`,
  );
  trainer.dispose();
}
for (const l of lines) console.log(l);
