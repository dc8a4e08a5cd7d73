#!/usr/bin/env node
// npm run bench:cluster-codes
// k-means on 70,000 x 10 codes (k = 10, 10 restarts): ours, and scikit-learn's KMeans on the same
// codes in the same command when /usr/bin/python3 has sklearn (Debian's python3-sklearn), once with
// all cores and once with one thread (ours is single-threaded). Last lines:
//   RESULT name=kmeans ours_s=… sklearn_s=… ratio=…            (ratio = sklearn_s / ours_s; >= 1 means we are no slower)
//   RESULT name=kmeans_1thread ours_s=… sklearn_s=… ratio=…
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRng } from '../packages/core/dist/index.js';
import { kmeans } from '../packages/clustering/dist/index.js';

const n = 70_000,
  d = 10,
  k = 10;
const rng = createRng(7);
const centers = Array.from({ length: k }, () => Array.from({ length: d }, () => rng.next() * 10 - 5));
const data = new Float64Array(n * d);
const gauss = () => Math.sqrt(-2 * Math.log(rng.next() + 1e-12)) * Math.cos(2 * Math.PI * rng.next());
for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) data[i * d + j] = centers[i % k][j] + 1.5 * gauss();

kmeans({ data: data.subarray(0, 7000 * d), n: 7000, d }, { k, nInit: 2, seed: 0 }); // warm-up
const t0 = performance.now();
const ours = kmeans({ data, n, d }, { k, nInit: 10, seed: 0 });
const oursS = (performance.now() - t0) / 1000;
console.log(`ours: ${oursS.toFixed(3)} s, inertia ${ours.inertia.toFixed(1)}, ${ours.iterations} iterations in the best run`);

const dir = mkdtempSync(join(tmpdir(), 'cvc-kmeans-'));
writeFileSync(join(dir, 'codes.f64'), Buffer.from(data.buffer));
const py = `
import sys, time, numpy as np
from sklearn.cluster import KMeans
x = np.fromfile(sys.argv[1], dtype=np.float64).reshape(${n}, ${d})
KMeans(n_clusters=${k}, n_init=2, random_state=0).fit(x[:7000])
t = time.perf_counter(); km = KMeans(n_clusters=${k}, n_init=10, random_state=0).fit(x); s = time.perf_counter() - t
print(f"{s:.4f} {km.inertia_:.1f}")
`;
const results = [];
for (const [name, env] of [
  ['kmeans', {}],
  ['kmeans_1thread', { OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' }],
]) {
  const r = spawnSync('/usr/bin/python3', ['-c', py, join(dir, 'codes.f64')], { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.log(`scikit-learn unavailable (${(r.stderr || r.error?.message || '').trim().split('\n').pop()}); install python3-sklearn for the comparison`);
    results.push(`RESULT name=${name} ours_s=${oursS.toFixed(3)} sklearn_s=na ratio=na`);
    continue;
  }
  const [s, inertia] = r.stdout.trim().split(' ').map(Number);
  console.log(`scikit-learn (${name === 'kmeans' ? 'all cores' : '1 thread'}): ${s.toFixed(3)} s, inertia ${inertia.toFixed(1)}`);
  results.push(`RESULT name=${name} ours_s=${oursS.toFixed(3)} sklearn_s=${s.toFixed(3)} ratio=${(s / oursS).toFixed(3)}`);
}
rmSync(dir, { recursive: true, force: true });
for (const l of results) console.log(l);
