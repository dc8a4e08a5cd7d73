#!/usr/bin/env node
// npm run bench:train [-- --images N] [--models seed-mnist,seed-cifar] [--profile] [--parity]
//
// Trains each seed model on the wasm backend, one warm-up epoch then one
// timed epoch of N random images (batch 32), and in the same command runs the
// PyTorch reference (../shared/reference/torch_cae.py, one thread, same N)
// when /usr/bin/python3 has torch. Prints a table, then one machine-readable
// line per model:
//   RESULT model=seed-mnist batch=32 ours_img_per_s=… torch_img_per_s=… ratio=…
// --profile adds the ten most expensive kernels of one training step.
// --threads N (default 1) trains on N wasm threads (the threaded build on
// Node worker_threads) and runs PyTorch with N threads too; the RESULT lines
// then say threads=N and give the ratio to PyTorch at N threads, plus
// ratio_vs_torch_1t against PyTorch's single thread.
// --conv auto|relaxed-simd|simd|xnnpack picks the wasm backend's convolution
// kernels (default auto: cvc's relaxed-SIMD kernels where Node compiles them).
// --parity trains both implementations for a few epochs on the same
// Fashion-MNIST subset and prints both final validation losses.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend, tf } from '../packages/tfjs-runtime/dist/index.js';
import { FoldTrainer, batchTensor, computeLoss } from '../packages/model/dist/index.js';
import { loadDataset, selectImages, stratifiedSubset } from '../packages/data/dist/index.js';
import { randomImageSet } from '../packages/data/dist/testing.js';

const root = resolve(new URL('.', import.meta.url).pathname, '..');
const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '1280' },
    models: { type: 'string', default: 'seed-mnist,seed-cifar' },
    backend: { type: 'string', default: 'wasm' },
    profile: { type: 'boolean', default: false },
    parity: { type: 'boolean', default: false },
    'parity-epochs': { type: 'string', default: '3' },
    'parity-images': { type: 'string', default: '2000' },
    threads: { type: 'string', default: '1' },
    conv: { type: 'string', default: process.env.CVC_WASM_CONV ?? 'auto' },
  },
});
const images = Number(values.images);
const models = values.models.split(',');
const torchRef = process.env.CVC_TORCH_REFERENCE ?? resolve(root, '../shared/reference/torch_cae.py');
const python = process.env.CVC_PYTHON ?? '/usr/bin/python3';
const shapes = { 'seed-mnist': [28, 28, 1], 'seed-cifar': [32, 32, 3] };

function torchAvailable() {
  if (!existsSync(python)) return `${python} not found`;
  if (!existsSync(torchRef)) return `${torchRef} not found`;
  const r = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  return r.status === 0 ? null : `${python} has no torch (apt-get install python3-torch)`;
}
const torchMissing = torchAvailable();
if (torchMissing) console.log(`PyTorch reference unavailable: ${torchMissing}; printing our numbers alone`);

const rss = () => (process.memoryUsage().rss / 2 ** 20).toFixed(0);
const threads = Number(values.threads);
const backend = await initBackend(values.backend, undefined, { wasmThreads: threads, wasmConv: values.conv });
console.log(
  `backend: ${backend.name} (${backend.provider}), ${images} images per timed epoch, batch 32, ${backend.threads ?? 1} thread(s)${backend.conv ? `, convolutions: ${backend.conv}` : ''}`,
);

async function ours(model) {
  const [h, w, c] = shapes[model];
  const set = randomImageSet(images, h, w, c, 1);
  const trainer = FoldTrainer.create({ model, epochs: 2, batchSize: 32, seed: 1 });
  const tiny = randomImageSet(32, h, w, c, 2);
  let timed = 0;
  await trainer.fit(
    { train: set, val: tiny },
    {
      onEpochEnd: (r) => {
        console.log(
          `  ${model} epoch ${r.epoch}: ${r.imagesPerSec.toFixed(1)} img/s  loss ${r.loss.toFixed(5)}  numTensors ${tf.memory().numTensors}  rss ${rss()} MiB`,
        );
        if (r.epoch === 2) timed = r.imagesPerSec;
      },
    },
  );
  if (values.profile) {
    const vars = trainer.net.model.trainableWeights.map((v) => v.read());
    const opt = tf.train.adam(1e-4);
    const loss = trainer.config.loss;
    const step = () =>
      tf.tidy(() => {
        const x = batchTensor(set, undefined, 0, 32);
        opt.minimize(() => computeLoss(loss, trainer.net.model.apply(x, { training: true }), x).loss, false, vars);
      });
    step();
    const prof = await tf.profile(step);
    const by = new Map();
    for (const k of prof.kernels) {
      const e = by.get(k.name) ?? { ms: 0, n: 0 };
      e.ms += k.kernelTimeMs;
      e.n++;
      by.set(k.name, e);
    }
    const total = [...by.values()].reduce((a, b) => a + b.ms, 0);
    console.log(`  ${model} profile of one step (kernel time ${total.toFixed(1)} ms):`);
    for (const [n, e] of [...by].sort((a, b) => b[1].ms - a[1].ms).slice(0, 10)) {
      console.log(`    ${n.padEnd(28)} ${e.ms.toFixed(1).padStart(7)} ms ${String(e.n).padStart(4)} calls ${((100 * e.ms) / total).toFixed(0).padStart(3)}%`);
    }
  }
  trainer.dispose();
  return timed;
}

function torch(model, n = 1) {
  if (torchMissing) return null;
  const r = spawnSync(python, [torchRef, '--model', model, '--threads', String(n), '--images', String(images)], { encoding: 'utf8' });
  const m = /img_per_s=([\d.]+)/.exec(r.stdout);
  if (r.status !== 0 || !m) {
    console.log(`  torch reference failed: ${r.stderr.trim().split('\n').pop()}`);
    return null;
  }
  return Number(m[1]);
}

const rows = [];
for (const model of models) {
  const o = await ours(model);
  const t = torch(model, threads);
  const t1 = threads > 1 ? torch(model, 1) : t;
  rows.push({ model, o, t, t1 });
}

if (values.parity) await parity();

console.log('\nmodel       ours img/s  torch img/s  ratio');
for (const { model, o, t } of rows)
  console.log(
    `${model.padEnd(11)} ${o.toFixed(1).padStart(10)}  ${t === null ? '        n/a' : t.toFixed(1).padStart(11)}  ${t === null ? '  n/a' : (o / t).toFixed(3)}`,
  );
for (const { model, o, t, t1 } of rows) {
  const extra = threads > 1 ? ` threads=${threads} ratio_vs_torch_1t=${t1 === null ? 'na' : (o / t1).toFixed(3)}` : '';
  console.log(
    `RESULT model=${model} batch=32 ours_img_per_s=${o.toFixed(1)} torch_img_per_s=${t === null ? 'na' : t.toFixed(1)} ratio=${t === null ? 'na' : (o / t).toFixed(3)}${extra}`,
  );
}

async function parity() {
  const epochs = Number(values['parity-epochs']);
  const n = Number(values['parity-images']);
  const ds = await loadDataset('fashion-mnist', { cacheDir: join(tmpdir(), 'cvc-none') });
  const idx = stratifiedSubset(ds.train.labels, n, 7);
  const cut = Math.floor(n * 0.8);
  const train = selectImages(ds.train, idx.subarray(0, cut));
  const val = selectImages(ds.train, idx.subarray(cut));
  console.log(`\nparity: seed-mnist, Fashion-MNIST ${train.count} train / ${val.count} validation images, ${epochs} epochs, Adam 1e-4, batch 32`);
  const results = {};
  for (const bnDebias of [true, false]) {
    const t = FoldTrainer.create({ model: 'seed-mnist', epochs, seed: 7, bnDebias });
    await t.fit({ train, val });
    results[bnDebias ? 'ours' : 'ours_raw_bn'] = t.epochHistory.map((e) => e.valLoss);
    t.dispose();
  }
  if (!torchMissing) {
    const dir = mkdtempSync(join(tmpdir(), 'cvc-parity-'));
    writeFileSync(join(dir, 'train.u8'), train.images);
    writeFileSync(join(dir, 'val.u8'), val.images);
    const r = spawnSync(python, [join(root, 'bench', 'torch_parity.py'), torchRef, dir, String(train.count), String(val.count), String(epochs)], {
      encoding: 'utf8',
    });
    rmSync(dir, { recursive: true, force: true });
    if (r.status === 0) results.torch = JSON.parse(r.stdout.trim().split('\n').pop());
    else console.log(`  torch parity run failed: ${r.stderr.trim().split('\n').pop()}`);
  }
  for (const [k, v] of Object.entries(results)) console.log(`  ${k.padEnd(12)} val loss per epoch: ${v.map((x) => x.toFixed(5)).join('  ')}`);
  for (const [k, v] of Object.entries(results)) console.log(`PARITY impl=${k} epochs=${epochs} final_val_loss=${v[v.length - 1].toFixed(5)}`);
}
