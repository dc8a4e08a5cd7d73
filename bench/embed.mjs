#!/usr/bin/env node
// npm run bench:embed [-- --images N] [--models seed-mnist,seed-cifar] [--batch B] [--profile]
//
// The embedding pass: encoder inference (codes of every image, as `cvc encode` /
// clustering compute them with embedImages) over N images (default 10,000): for
// seed-mnist the first N Fashion-MNIST test images (random 28x28x1 images where
// the dataset is not installed), for seed-cifar random 32x32x3 images. Ours on the
// wasm backend (one thread), and in the same command the PyTorch reference encoder
// (../shared/reference/torch_cae.py via bench/embed_torch.py, one thread, eval mode,
// inference_mode) on the same images. Each side runs twice and the faster run counts.
// Ours also runs with tfjs-backend-wasm's own FusedConv2D/elementwise kernels
// (elementwiseSwitch off: ours_base), alternating with cvc's. Last lines, one per model:
//   RESULT name=embed model=seed-mnist ours_img_per_s=… ours_base_img_per_s=… torch_img_per_s=… ratio=…   (ratio = ours / torch)
// --profile adds the most expensive kernels of one inference batch.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend, tf, elementwiseSwitch } from '../packages/tfjs-runtime/dist/index.js';
import { FoldTrainer, batchTensor, embedImages } from '../packages/model/dist/index.js';
import { loadDataset, selectImages } from '../packages/data/dist/index.js';
import { randomImageSet } from '../packages/data/dist/testing.js';

const root = resolve(new URL('.', import.meta.url).pathname, '..');
const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '10000' },
    models: { type: 'string', default: 'seed-mnist,seed-cifar' },
    batch: { type: 'string', default: '256' },
    backend: { type: 'string', default: 'wasm' },
    profile: { type: 'boolean', default: false },
  },
});
const images = Number(values.images);
const batch = Number(values.batch);
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

const backend = await initBackend(values.backend);
console.log(
  `backend: ${backend.name} (${backend.provider}), ${images} images, batch ${batch}, ${backend.threads ?? 1} thread(s)${backend.conv ? `, convolutions: ${backend.conv}` : ''}`,
);

async function imagesFor(model) {
  const [h, w, c] = shapes[model];
  if (model === 'seed-mnist') {
    try {
      const ds = await loadDataset('fashion-mnist', { cacheDir: join(tmpdir(), 'cvc-none') });
      const n = Math.min(images, ds.test.count);
      return {
        set: selectImages(
          ds.test,
          Int32Array.from({ length: n }, (_, i) => i),
        ),
        source: `Fashion-MNIST test images`,
      };
    } catch (err) {
      console.log(`  Fashion-MNIST unavailable (${err.message}); random images instead`);
    }
  }
  return { set: randomImageSet(images, h, w, c, 3), source: 'random images' };
}

function ours(model, set) {
  const trainer = FoldTrainer.create({ model, epochs: 1, batchSize: 32, seed: 1 });
  const encoder = trainer.net.encoder;
  embedImages(
    encoder,
    selectImages(
      set,
      Int32Array.from({ length: Math.min(batch, set.count) }, (_, i) => i),
    ),
    batch,
  ); // warm-up
  let best = Infinity;
  let baseBest = Infinity;
  let codes;
  for (let r = 0; r < 2; r++) {
    for (const enabled of [false, true]) {
      elementwiseSwitch.enabled = enabled;
      const t0 = performance.now();
      codes = embedImages(encoder, set, batch);
      const s = (performance.now() - t0) / 1000;
      if (enabled) best = Math.min(best, s);
      else baseBest = Math.min(baseBest, s);
    }
  }
  if (values.profile) {
    const x = batchTensor(set, undefined, 0, Math.min(batch, set.count));
    const prof = tf.profile(() => tf.tidy(() => encoder.predict(x)));
    return Promise.resolve(prof).then((p) => {
      x.dispose();
      const by = new Map();
      for (const k of p.kernels) {
        const e = by.get(k.name) ?? { ms: 0, n: 0 };
        e.ms += k.kernelTimeMs;
        e.n++;
        by.set(k.name, e);
      }
      const total = [...by.values()].reduce((a, b) => a + b.ms, 0);
      console.log(`  ${model} profile of one batch of ${batch} (kernel time ${total.toFixed(1)} ms):`);
      for (const [n, e] of [...by].sort((a, b) => b[1].ms - a[1].ms).slice(0, 10)) {
        console.log(`    ${n.padEnd(28)} ${e.ms.toFixed(1).padStart(7)} ms ${String(e.n).padStart(4)} calls ${((100 * e.ms) / total).toFixed(0).padStart(3)}%`);
      }
      trainer.dispose();
      return { ips: set.count / best, base: set.count / baseBest, d: codes.d };
    });
  }
  trainer.dispose();
  return Promise.resolve({ ips: set.count / best, base: set.count / baseBest, d: codes.d });
}

function torch(model, set) {
  if (torchMissing) return null;
  const dir = mkdtempSync(join(tmpdir(), 'cvc-embed-'));
  try {
    const file = join(dir, 'images.u8');
    writeFileSync(file, set.images);
    const args = [join(root, 'bench', 'embed_torch.py'), torchRef, model, file, set.count, set.height, set.width, set.channels, batch, 1].map(String);
    const r = spawnSync(python, args, { encoding: 'utf8' });
    if (r.status !== 0) {
      console.log(`  torch reference failed: ${r.stderr.trim().split('\n').pop()}`);
      return null;
    }
    const m = /img_per_s=([\d.]+)/.exec(r.stdout);
    return m ? Number(m[1]) : null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const lines = [];
for (const model of values.models.split(',')) {
  const { set, source } = await imagesFor(model);
  const o = await ours(model, set);
  const t = torch(model, set);
  console.log(
    `  ${model}: ${set.count} ${source}, codes of ${o.d}: ours ${o.ips.toFixed(1)} img/s (tfjs-backend-wasm's kernels ${o.base.toFixed(1)}), torch ${t === null ? 'na' : t.toFixed(1)} img/s`,
  );
  lines.push(
    `RESULT name=embed model=${model} images=${set.count} batch=${batch} ours_img_per_s=${o.ips.toFixed(1)} ours_base_img_per_s=${o.base.toFixed(1)} torch_img_per_s=${t === null ? 'na' : t.toFixed(1)} ratio=${t === null ? 'na' : (o.ips / t).toFixed(3)}`,
  );
}
for (const l of lines) console.log(l);
