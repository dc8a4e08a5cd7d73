#!/usr/bin/env node
// npm run bench:cluster-codes
// k-means on 70,000 x 10 codes (k = 10, 10 restarts): ours, and scikit-learn's KMeans on the same
// codes in the same command when /usr/bin/python3 has sklearn (Debian's python3-sklearn), once with
// all cores and once with one thread (ours is single-threaded). Each side runs CVC_BENCH_REPS times
// (default 3) and the best wall time counts; the CPU seconds of that fastest run are printed too (on a
// loaded machine they are the steadier measure of the work; cpu_ratio compares them). Last lines:
//   RESULT name=kmeans ours_s=… sklearn_s=… ratio=… ours_cpu_s=… sklearn_cpu_s=… cpu_ratio=… inertia_rel_diff=…
//   RESULT name=kmeans_1thread ours_s=… sklearn_s=… ratio=… …   (ratio = sklearn_s / ours_s; >= 1 means we are no slower)
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

const reps = Math.max(1, Number(process.env['CVC_BENCH_REPS'] ?? 3));
kmeans({ data: data.subarray(0, 7000 * d), n: 7000, d }, { k, nInit: 2, seed: 0 }); // warm-up
let ours;
let oursS = Infinity;
let oursCpu = 0;
const oursAll = [];
for (let r = 0; r < reps; r++) {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  ours = kmeans({ data, n, d }, { k, nInit: 10, seed: 0 });
  const c = process.cpuUsage(c0);
  const s = (performance.now() - t0) / 1000;
  oursAll.push(s);
  if (s < oursS) {
    oursS = s;
    oursCpu = (c.user + c.system) / 1e6;
  }
}
console.log(
  `ours: ${oursS.toFixed(3)} s (cpu ${oursCpu.toFixed(3)} s; all runs ${oursAll.map((s) => s.toFixed(3)).join(' ')}), inertia ${ours.inertia.toFixed(4)}, ${ours.iterations} iterations in the best run`,
);

const dir = mkdtempSync(join(tmpdir(), 'cvc-kmeans-'));
writeFileSync(join(dir, 'codes.f64'), Buffer.from(data.buffer));
const py = `
import sys, time, numpy as np
from sklearn.cluster import KMeans
x = np.fromfile(sys.argv[1], dtype=np.float64).reshape(${n}, ${d})
KMeans(n_clusters=${k}, n_init=2, random_state=0).fit(x[:7000])
runs = []
for _ in range(${reps}):
    t = time.perf_counter(); c = time.process_time()
    km = KMeans(n_clusters=${k}, n_init=10, random_state=0).fit(x)
    runs.append((time.perf_counter() - t, time.process_time() - c))
s, cpu = min(runs)
print(f"{s:.4f} {km.inertia_:.6f} {cpu:.4f} {' '.join(f'{r[0]:.3f}' for r in runs)}")
`;
const results = [];
for (const [name, env] of [
  ['kmeans', {}],
  ['kmeans_1thread', { OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' }],
]) {
  const r = spawnSync('/usr/bin/python3', ['-c', py, join(dir, 'codes.f64')], { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.log(`scikit-learn unavailable (${(r.stderr || r.error?.message || '').trim().split('\n').pop()}); install python3-sklearn for the comparison`);
    results.push(`RESULT name=${name} ours_s=${oursS.toFixed(3)} sklearn_s=na ratio=na ours_cpu_s=${oursCpu.toFixed(3)}`);
    continue;
  }
  const [s, inertia, cpu, ...all] = r.stdout.trim().split(' ').map(Number);
  const rel = Math.abs(ours.inertia - inertia) / inertia;
  console.log(
    `scikit-learn (${name === 'kmeans' ? 'all cores' : '1 thread'}): ${s.toFixed(3)} s (cpu ${cpu.toFixed(3)} s; all runs ${all.map((v) => v.toFixed(3)).join(' ')}), inertia ${inertia.toFixed(4)}`,
  );
  results.push(
    `RESULT name=${name} ours_s=${oursS.toFixed(3)} sklearn_s=${s.toFixed(3)} ratio=${(s / oursS).toFixed(3)} ours_cpu_s=${oursCpu.toFixed(3)} sklearn_cpu_s=${cpu.toFixed(3)} cpu_ratio=${(cpu / oursCpu).toFixed(3)} inertia_rel_diff=${rel.toExponential(2)}`,
  );
}
rmSync(dir, { recursive: true, force: true });
for (const l of results) console.log(l);
