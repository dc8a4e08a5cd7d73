import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng } from '@cvc/core';
import { ClusteringError, gmm, hungarianAccuracy, umapEmbed, type Points } from './index.js';

/** `perClass` points around each of `centres` (d-dimensional), Gaussian noise of sd `sd`, seeded. */
function blobs(centres: number[][], perClass: number, sd: number, seed: number): { points: Points; labels: number[] } {
  const rng = createRng(seed);
  const d = (centres[0] as number[]).length;
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
  const data = new Float64Array(centres.length * perClass * d);
  const labels: number[] = [];
  let o = 0;
  for (let c = 0; c < centres.length; c++)
    for (let i = 0; i < perClass; i++) {
      for (let j = 0; j < d; j++) data[o++] = (centres[c] as number[])[j]! + sd * gauss();
      labels.push(c);
    }
  return { points: { data, n: labels.length, d }, labels };
}

const three = [
  [0, 0, 0],
  [10, 0, 5],
  [0, 10, -5],
];

test('gmm recovers well-separated blobs (full and diag); every row of probabilities sums to 1', () => {
  const { points, labels } = blobs(three, 60, 1, 1);
  for (const covariance of ['full', 'diag'] as const) {
    const m = gmm(points, { k: 3, seed: 0, covariance });
    assert.equal(hungarianAccuracy(labels, m.labels).accuracy, 1, covariance);
    assert.ok(m.converged, `${covariance} converged`);
    for (let i = 0; i < points.n; i++) {
      let s = 0;
      for (let c = 0; c < 3; c++) s += m.probabilities[i * 3 + c] as number;
      assert.ok(Math.abs(s - 1) < 1e-9, `row ${i} sums to ${s}`);
    }
    let w = 0;
    for (const v of m.weights) w += v;
    assert.ok(Math.abs(w - 1) < 1e-9);
    // Each fitted mean lies near one true centre.
    for (let c = 0; c < 3; c++) {
      const mean = Array.from(m.means.subarray(c * 3, c * 3 + 3));
      assert.ok(
        three.some((t) => t.every((v, j) => Math.abs(v - (mean[j] as number)) < 0.5)),
        `mean ${mean.join(',')}`,
      );
    }
    // New points near a centre go to that centre's component.
    const probe = { data: Float64Array.from([10, 0, 5, 0, 10, -5]), n: 2, d: 3 };
    const p = m.predict(probe);
    assert.equal(p[0], m.labels[60]);
    assert.equal(p[1], m.labels[120]);
  }
});

test('gmm is reproducible from its seed; another seed gives another mixture', () => {
  // Structureless points: the initialisation decides where EM ends.
  const rng = createRng(5);
  const points = { data: Float64Array.from({ length: 400 * 2 }, () => rng.next()), n: 400, d: 2 };
  const a = gmm(points, { k: 6, seed: 1, init: 'kmeans++', maxIter: 5 });
  const b = gmm(points, { k: 6, seed: 1, init: 'kmeans++', maxIter: 5 });
  const c = gmm(points, { k: 6, seed: 2, init: 'kmeans++', maxIter: 5 });
  assert.deepEqual(a.means, b.means);
  assert.deepEqual(a.probabilities, b.probabilities);
  assert.notDeepEqual(a.means, c.means);
});

test('gmm refuses bad input with typed errors', () => {
  const { points } = blobs(three, 5, 1, 2);
  const code = (f: () => unknown, want: string, field: string): void =>
    assert.throws(f, (e: unknown) => e instanceof ClusteringError && e.code === want && e.field === field && e.message.startsWith(`${field}:`));
  code(() => gmm(points, { k: 0 }), 'INVALID_OPTION', 'k');
  code(() => gmm(points, { k: 16 }), 'TOO_FEW_POINTS', 'k');
  code(() => gmm(points, { k: 2, tol: Number.NaN }), 'INVALID_OPTION', 'tol');
  code(() => gmm(points, { k: 2, covariance: 'tied' as 'full' }), 'INVALID_OPTION', 'covariance');
  const bad = Float64Array.from(points.data);
  bad[7] = Number.NaN;
  code(() => gmm({ ...points, data: bad }, { k: 2 }), 'INVALID_POINTS', 'points');
  // Identical points and no regularisation: a singular covariance, said so.
  code(() => gmm({ data: new Float64Array(20), n: 10, d: 2 }, { k: 1, regCovar: 0 }), 'SINGULAR_COVARIANCE', 'gmm');
});

test('gmm on values whose squares overflow says the values are too large, not that a covariance is singular', () => {
  const { points } = blobs(three, 5, 1, 2);
  const huge = Float64Array.from(points.data, (v) => v * 1e160);
  for (const covariance of ['full', 'diag'] as const)
    assert.throws(
      () => gmm({ ...points, data: huge }, { k: 2, covariance }),
      (e: unknown) =>
        e instanceof ClusteringError &&
        e.code === 'INVALID_POINTS' &&
        /^points: values up to [0-9.]+e\+16\d are too large: component \d's covariance became (Infinity|NaN) \(their squares overflow float64\); scale the points/.test(
          e.message,
        ),
    );
});

test('umapEmbed is reproducible from its seed and keeps the blobs apart', async () => {
  const { points, labels } = blobs(
    [
      [0, 0, 0, 0, 0],
      [20, 0, 0, 0, 0],
      [0, 20, 0, 0, 0],
    ],
    40,
    1,
    3,
  );
  const phases = new Set<string>();
  const a = await umapEmbed(points, { dims: 2, neighbors: 10, seed: 7, epochs: 60, onProgress: (p) => phases.add(p.phase) });
  const b = await umapEmbed(points, { dims: 2, neighbors: 10, seed: 7, epochs: 60 });
  const c = await umapEmbed(points, { dims: 2, neighbors: 10, seed: 8, epochs: 60 });
  assert.equal(a.embedding.n, 120);
  assert.equal(a.embedding.d, 2);
  assert.deepEqual(a.embedding.data, b.embedding.data);
  assert.notDeepEqual(a.embedding.data, c.embedding.data);
  assert.deepEqual([...phases].sort(), ['layout', 'neighbors']);
  assert.ok(a.embedding.data.every(Number.isFinite));
  assert.equal(hungarianAccuracy(labels, gmm(a.embedding, { k: 3, seed: 0 }).labels).accuracy, 1);
});

test('umapEmbed with a sample fits the sample and transforms the rest, reproducibly', async () => {
  const { points, labels } = blobs(
    [
      [0, 0, 0, 0],
      [20, 0, 0, 0],
    ],
    50,
    1,
    4,
  );
  const phases = new Set<string>();
  const opts = { dims: 3, neighbors: 8, seed: 1, sample: 40, epochs: 50, chunk: 25 };
  const a = await umapEmbed(points, { ...opts, onProgress: (p) => phases.add(p.phase) });
  const b = await umapEmbed(points, opts);
  assert.equal(a.fitted.length, 40);
  assert.ok(phases.has('transform'));
  assert.deepEqual(a.embedding.data, b.embedding.data);
  assert.deepEqual(a.fitted, b.fitted);
  assert.ok(a.embedding.data.every(Number.isFinite));
  // Transformed points land with their blob.
  assert.equal(hungarianAccuracy(labels, gmm(a.embedding, { k: 2, seed: 0, covariance: 'diag' }).labels).accuracy, 1);
});

test('umapEmbed refuses bad options and points with typed errors', async () => {
  const { points } = blobs([[0, 0]], 12, 1, 5);
  const code = async (p: Promise<unknown>, want: string, field: string): Promise<void> => {
    await assert.rejects(p, (e: unknown) => e instanceof ClusteringError && e.code === want && e.field === field);
  };
  await code(umapEmbed(points, { dims: 0 }), 'INVALID_OPTION', 'dims');
  await code(umapEmbed(points, { neighbors: 12 }), 'TOO_FEW_POINTS', 'neighbors');
  await code(umapEmbed(points, { neighbors: 5, sample: 5 }), 'TOO_FEW_POINTS', 'neighbors');
  await assert.rejects(
    umapEmbed(points, { neighbors: 12 }),
    /^ClusteringError: neighbors: 12 neighbours need more than 12 fitted points, got 12; give neighbors 11 or lower$/,
  );
  await code(umapEmbed(points, { neighbors: 4, minDist: -1 }), 'INVALID_OPTION', 'minDist');
  const bad = Float64Array.from(points.data);
  bad[3] = Number.POSITIVE_INFINITY;
  await code(umapEmbed({ ...points, data: bad }, { neighbors: 4 }), 'INVALID_POINTS', 'points');
});
