#!/usr/bin/env node
// npm run bench:import [-- --sizes 2000,20000 --folds 5]
//
// Image-folder import throughput and memory: writes N JPEGs (Fashion-MNIST
// training images upscaled to 64x64 RGB, in class folders) into a temp dir,
// then imports each folder with `cvc dataset import FOLDER --name bench
// --out DIR` (the local directory sink: shards, sources files and manifest in
// a temp dir, no S3) in a fresh child process, so each size's peak RSS is its
// own. Both passes are timed (the check pass decodes and hashes every image and
// keeps its pixels in a scratch file, the write pass reads them back into the
// shards; past the scratch cap it decodes again). RSS must not grow with N.
//
// Last lines, machine-readable:
//   RESULT images=N images_per_s=… peak_rss_mib=… peak_heap_mib=… peak_array_buffers_mib=… seconds=…
// (peak RSS from the child's getrusage; heap and array buffers sampled every 20 ms)
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '2000,20000' },
    folds: { type: 'string', default: '5' },
    child: { type: 'string' },
    out: { type: 'string' },
  },
});

if (values.child) {
  // One import, in this process; prints its wall time and peak RSS as JSON.
  const { main } = await import('../packages/cli/dist/index.js');
  const { PassThrough } = await import('node:stream');
  const sink = new PassThrough();
  let text = '';
  sink.on('data', (c) => (text += c.toString()));
  const env = { cacheDir: join(tmpdir(), 'cvc-bench-cache'), dataDirs: [], stdout: sink, stderr: process.stderr };
  // The JS side's share of the peak: heap and array buffers (pixels, chunks), sampled.
  const peak = { heapUsed: 0, arrayBuffers: 0 };
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed);
    peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers);
  }, 20);
  const t0 = performance.now();
  const code = await main(['dataset', 'import', values.child, '--name', 'bench', '--folds', values.folds, '--out', values.out], env, { handleSignals: false });
  const s = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  process.stdout.write(JSON.stringify({ code, seconds: s, maxRssKiB: process.resourceUsage().maxRSS, peak, out: text }) + '\n');
  process.exit(code);
}

const { loadDataset } = await import('../packages/data/dist/index.js');
const { writeImageTree } = await import('../packages/data/dist/testing.js');
const ds = await loadDataset('fashion-mnist', { cacheDir: join(tmpdir(), 'cvc-bench-cache') });
const classes = ds.classNames.map((c) => c.replace(/[^A-Za-z0-9-]+/g, '_'));
const sizes = values.sizes.split(',').map(Number);
const work = await mkdtemp(join(tmpdir(), 'cvc-bench-import-'));
const results = [];
try {
  for (const n of sizes) {
    if (n > ds.train.count) throw new Error(`at most ${ds.train.count} images (Fashion-MNIST's training split)`);
    const folder = join(work, `jpegs-${n}`);
    const t0 = performance.now();
    await writeImageTree(folder, ds.train, n, { height: 64, width: 64, channels: 3, format: 'jpeg', classNames: classes });
    console.error(`wrote ${n} JPEGs (64x64 RGB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const stdout = execFileSync(
      process.execPath,
      [fileURLToPath(import.meta.url), '--child', folder, '--out', join(work, `out-${n}`), '--folds', values.folds],
      { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 },
    ).toString();
    const r = JSON.parse(stdout.trim().split('\n').pop());
    if (r.code !== 0) throw new Error(`import of ${n} images exited ${r.code}`);
    console.error(r.out.trim());
    results.push({
      n,
      perS: n / r.seconds,
      rss: r.maxRssKiB / 1024,
      seconds: r.seconds,
      heap: r.peak.heapUsed / 2 ** 20,
      buffers: r.peak.arrayBuffers / 2 ** 20,
    });
    await rm(folder, { recursive: true, force: true });
    await rm(join(work, `out-${n}`), { recursive: true, force: true });
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
for (const r of results)
  console.log(
    `RESULT images=${r.n} images_per_s=${r.perS.toFixed(0)} peak_rss_mib=${r.rss.toFixed(0)} peak_heap_mib=${r.heap.toFixed(0)} peak_array_buffers_mib=${r.buffers.toFixed(0)} seconds=${r.seconds.toFixed(1)}`,
  );
