#!/usr/bin/env node
// npm run bench:train [-- --images N] [--models seed-mnist,seed-cifar,custom-64] [--threads 1,2] [--rounds R] [--profile] [--parity]
//
// Trains each model on the wasm backend, one warm-up epoch then one timed
// epoch of N random images (batch 32), once per thread count (each in its own
// process: the threaded build is another wasm module), and in the same
// command runs the PyTorch reference (../shared/reference/torch_cae.py, same
// N, torch.set_num_threads(threads)) when /usr/bin/python3 has torch. All of
// that is repeated --rounds times (default 3), ours and PyTorch alternating,
// and each side's fastest round counts: on a shared machine a slow stretch
// then hits both sides alike instead of whichever happened to run in it
// (every round is printed too). Prints a table, then machine-readable lines,
// per model:
//   RESULT model=seed-mnist batch=32 ours_img_per_s=… torch_img_per_s=… ratio=…            (1 thread)
//   RESULT model=seed-mnist threads=2 batch=32 ours_img_per_s=… torch_img_per_s=… ratio=…  (2 threads)
//   RESULT model=seed-mnist scaling=2/1 ours_speedup=… torch_speedup=…
// plus, per run, the CPU time the process used per image (cpu_ms_per_img:
// on a loaded machine wall time per image rises with the load, CPU time much
// less, so a 2-thread run that costs about the CPU time of a 1-thread run
// would be about twice as fast on idle cores).
// Models: seed-mnist, seed-cifar, and custom-64 (a 64x64x3 custom config with
// strided convolutions; no PyTorch reference).
// --profile adds the ten most expensive kernels of one training step, per
// thread count.
// --conv auto|relaxed-simd|simd|xnnpack picks the wasm backend's convolution
// kernels (default auto: cvc's relaxed-SIMD kernels where Node compiles them).
// --parity trains both implementations for a few epochs on the same
// Fashion-MNIST subset and prints both final validation losses.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
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
    threads: { type: 'string', default: '1,2' },
    rounds: { type: 'string', default: '3' },
    conv: { type: 'string', default: process.env.CVC_WASM_CONV ?? 'auto' },
    child: { type: 'boolean', default: false },
  },
});
const images = Number(values.images);
const models = values.models.split(',');
const torchRef = process.env.CVC_TORCH_REFERENCE ?? resolve(root, '../shared/reference/torch_cae.py');
const python = process.env.CVC_PYTHON ?? '/usr/bin/python3';
const shapes = { 'seed-mnist': [28, 28, 1], 'seed-cifar': [32, 32, 3], 'custom-64': [64, 64, 3] };
/** custom-64: a 64x64x3 input, strided 5x5 and 3x3 convolutions, 3x3 with pooling (model 'custom'). */
const CUSTOM_64 = {
  input: { height: 64, width: 64, channels: 3 },
  encoder: [
    { filters: 16, kernel: 5, stride: 2 },
    { filters: 32, kernel: 3, stride: 2 },
    { filters: 32, kernel: 3, pool: 2 },
  ],
  dense: [64],
  codeSize: 32,
  outputActivation: 'sigmoid',
};
const trainerOptions = (model) => (model === 'custom-64' ? { model: 'custom', modelConfig: CUSTOM_64 } : { model });
const threadCounts = values.threads.split(',').map(Number);
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);
for (const m of models) if (!shapes[m]) throw new Error(`--models: unknown model '${m}' (choose from ${Object.keys(shapes).join(', ')})`);

function torchAvailable() {
  if (!existsSync(python)) return `${python} not found`;
  if (!existsSync(torchRef)) return `${torchRef} not found`;
  const r = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  return r.status === 0 ? null : `${python} has no torch (apt-get install python3-torch)`;
}
const torchMissing = values.child ? 'child' : torchAvailable();
if (torchMissing && !values.child) console.log(`PyTorch reference unavailable: ${torchMissing}; printing our numbers alone`);

const rss = () => (process.memoryUsage().rss / 2 ** 20).toFixed(0);
if (!values.child) {
  await parent();
  process.exit(0);
}
const threads = threadCounts[0];
const backend = await initBackend(values.backend, undefined, { wasmThreads: threads, wasmConv: values.conv });
console.log(
  `backend: ${backend.name} (${backend.provider}), ${images} images per timed epoch, batch 32, ${backend.threads ?? 1} thread(s)${backend.conv ? `, convolutions: ${backend.conv}` : ''}`,
);
for (const model of models) {
  const r = await ours(model);
  console.log(`CHILD ${JSON.stringify({ model, threads: backend.threads ?? 1, conv: backend.conv ?? backend.name, ...r })}`);
}
process.exit(0);

/** Runs this script once per thread count (as --child) and the PyTorch reference, and prints the results. */
async function parent() {
  console.log(
    `bench:train: ${images} images per timed epoch, batch 32, threads ${threadCounts.join(' and ')}, best of ${rounds} round(s) per side; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const runs = [];
  for (let round = 1; round <= rounds; round++) {
    for (const n of threadCounts) {
      const args = [
        new URL(import.meta.url).pathname,
        '--child',
        '--threads',
        String(n),
        '--images',
        String(images),
        '--models',
        models.join(','),
        '--conv',
        values.conv,
        '--backend',
        values.backend,
      ];
      if (values.profile && round === 1) args.push('--profile');
      const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
      for (const line of r.stdout.split('\n')) {
        if (line.startsWith('CHILD ')) {
          const c = JSON.parse(line.slice(6));
          const t = c.model in { 'seed-mnist': 1, 'seed-cifar': 1 } ? torch(c.model, n) : null;
          runs.push({ ...c, torch: t });
          console.log(
            `  round ${round}: ${c.model} ${n} thread(s): ours ${c.imgPerSec.toFixed(1)} img/s, torch ${t === null ? 'n/a' : t.toFixed(1)} img/s${t === null ? '' : `, ratio ${(c.imgPerSec / t).toFixed(3)}`}`,
          );
        } else if (line.trim() !== '' && !/^=+$|Hi, looks like|tfjs-node/.test(line)) console.log(line);
      }
      if (r.status !== 0) console.log(`  the ${n}-thread run failed (exit ${r.status})`);
    }
  }
  // Per model and thread count: each side's fastest round (and our lowest CPU time per image).
  const rows = [];
  for (const run of runs) {
    const row = rows.find((x) => x.model === run.model && x.threads === run.threads);
    if (!row) rows.push({ ...run });
    else {
      row.imgPerSec = Math.max(row.imgPerSec, run.imgPerSec);
      row.cpuMsPerImg = Math.min(row.cpuMsPerImg, run.cpuMsPerImg);
      if (run.torch !== null) row.torch = row.torch === null ? run.torch : Math.max(row.torch, run.torch);
    }
  }
  if (values.parity) await parity();
  console.log(`\nmodel       threads  convolutions  ours img/s  cpu ms/img  torch img/s  ratio`);
  for (const r of rows)
    console.log(
      `${r.model.padEnd(11)} ${String(r.threads).padStart(7)}  ${r.conv.padEnd(12)}  ${r.imgPerSec.toFixed(1).padStart(10)}  ${r.cpuMsPerImg.toFixed(2).padStart(10)}  ${r.torch === null ? '        n/a' : r.torch.toFixed(1).padStart(11)}  ${r.torch === null ? '  n/a' : (r.imgPerSec / r.torch).toFixed(3)}`,
    );
  const fmt = (v) => (v === null ? 'na' : v.toFixed(1));
  for (const r of rows) {
    const t = r.threads > 1 ? ` threads=${r.threads}` : '';
    console.log(
      `RESULT model=${r.model}${t} batch=32 ours_img_per_s=${r.imgPerSec.toFixed(1)} torch_img_per_s=${fmt(r.torch)} ratio=${r.torch === null ? 'na' : (r.imgPerSec / r.torch).toFixed(3)} cpu_ms_per_img=${r.cpuMsPerImg.toFixed(2)}`,
    );
  }
  for (const model of models) {
    const one = rows.find((r) => r.model === model && r.threads === 1);
    for (const r of rows.filter((x) => x.model === model && x.threads > 1)) {
      if (!one) continue;
      const ts = one.torch !== null && r.torch !== null ? (r.torch / one.torch).toFixed(3) : 'na';
      console.log(
        `RESULT model=${model} scaling=${r.threads}/1 ours_speedup=${(r.imgPerSec / one.imgPerSec).toFixed(3)} torch_speedup=${ts} ours_cpu_per_img_ratio=${(r.cpuMsPerImg / one.cpuMsPerImg).toFixed(3)}`,
      );
    }
  }
  console.log(
    `load average at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}

async function ours(model) {
  const [h, w, c] = shapes[model];
  const set = randomImageSet(images, h, w, c, 1);
  const trainer = FoldTrainer.create({ ...trainerOptions(model), epochs: 2, batchSize: 32, seed: 1 });
  const tiny = randomImageSet(32, h, w, c, 2);
  let timed = 0;
  let cpuMsPerImg = 0;
  let cpu0 = process.cpuUsage();
  await trainer.fit(
    { train: set, val: tiny },
    {
      onEpochEnd: (r) => {
        console.log(
          `  ${model} epoch ${r.epoch}: ${r.imagesPerSec.toFixed(1)} img/s  loss ${r.loss.toFixed(5)}  numTensors ${tf.memory().numTensors}  rss ${rss()} MiB`,
        );
        if (r.epoch === 2) {
          timed = r.imagesPerSec;
          const u = process.cpuUsage(cpu0);
          cpuMsPerImg = (u.user + u.system) / 1000 / images;
        }
        cpu0 = process.cpuUsage();
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
    opt.dispose();
    const by = new Map();
    for (const k of prof.kernels) {
      const e = by.get(k.name) ?? { ms: 0, n: 0 };
      e.ms += k.kernelTimeMs;
      e.n++;
      by.set(k.name, e);
    }
    const total = [...by.values()].reduce((a, b) => a + b.ms, 0);
    console.log(`  ${model} profile of one step on ${backend.threads ?? 1} thread(s) (kernel time ${total.toFixed(1)} ms):`);
    for (const [n, e] of [...by].sort((a, b) => b[1].ms - a[1].ms).slice(0, 10)) {
      console.log(`    ${n.padEnd(28)} ${e.ms.toFixed(1).padStart(7)} ms ${String(e.n).padStart(4)} calls ${((100 * e.ms) / total).toFixed(0).padStart(3)}%`);
    }
  }
  trainer.dispose();
  return { imgPerSec: timed, cpuMsPerImg };
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
