import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ari, ClusteringError, confusionMatrix, hungarian, hungarianAccuracy, kmeans, nmi, purity, scoreClustering } from './index.js';

// Reference values computed independently with scikit-learn 1.2 (normalized_mutual_info_score,
// adjusted_rand_score, KMeans) and scipy's linear_sum_assignment, on the same inputs.
const close = (a: number, b: number, tol = 1e-9): void => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

test('a hand-made case: accuracy, purity, NMI and ARI', () => {
  const y = [0, 0, 0, 1, 1, 1, 2, 2, 2];
  const c = [1, 1, 0, 2, 2, 2, 0, 0, 0];
  assert.deepEqual(confusionMatrix(y, c), [
    [1, 0, 3],
    [2, 0, 0],
    [0, 3, 0],
  ]);
  const h = hungarianAccuracy(y, c);
  close(h.accuracy, 8 / 9);
  assert.deepEqual(h.mapping, [2, 0, 1]);
  close(purity(y, c), 8 / 9);
  close(nmi(y, c), 0.786013103263073);
  close(ari(y, c), 0.6428571428571429);
  // Perfect clusterings score 1 whatever the cluster names.
  assert.deepEqual(scoreClustering([0, 0, 1, 1, 2], [2, 2, 0, 0, 1]), { accuracy: 1, nmi: 1, ari: 1, purity: 1 });
});

test('larger fixed cases match scikit-learn', () => {
  const i = range(1000);
  const cases: [number[], number[], number, number, number, number][] = [
    [i.map((x) => x % 7), i.map((x) => (x * x + 3 * x) % 5), 0.145, 5.136857976752786e-5, -0.0027174594261247125, 0.145],
    [i.map((x) => Math.floor(x / 100) % 10), i.map((x) => Math.floor(((x * 37) % 1000) / 100)), 0.12, 0.006028699419727279, -0.005951515151515151, 0.12],
    [i.map((x) => x % 10), i.map((x) => (x % 13 === 0 ? (x + 1) % 10 : x % 10)), 0.923, 0.8821989196249492, 0.8406464189299138, 0.923],
  ];
  for (const [y, c, acc, n, a, p] of cases) {
    const s = scoreClustering(y, c);
    close(s.accuracy, acc);
    close(s.nmi, n);
    close(s.ari, a);
    close(s.purity, p);
  }
});

test('the Hungarian algorithm finds the minimum-cost assignment', () => {
  const cost = [
    [4, 1, 3],
    [2, 0, 5],
    [3, 2, 2],
  ];
  const a = hungarian(cost);
  assert.deepEqual(a, [1, 0, 2]);
  // Brute force over all permutations agrees on a random 6x6 matrix.
  const m = Array.from({ length: 6 }, (_, r) => Array.from({ length: 6 }, (_, c) => ((r * 7 + c * 13 + r * c) % 17) + 1));
  const best = (rows: number[], used: Set<number>): number =>
    rows.length === 0
      ? 0
      : Math.min(
          ...range(6)
            .filter((c) => !used.has(c))
            .map((c) => (m[rows[0] as number]?.[c] as number) + best(rows.slice(1), new Set([...used, c]))),
        );
  const h = hungarian(m);
  assert.equal(
    h.reduce((s, c, r) => s + (m[r]?.[c] as number), 0),
    best(range(6), new Set()),
  );
});

test('k-means finds well-separated blobs and matches scikit-learn’s inertia', () => {
  const n = 600;
  const data = new Float64Array(n * 3);
  for (let j = 0; j < n; j++) {
    const cl = j % 4;
    data.set([cl * 5 + Math.sin(j * 1.7), (cl % 2) * 7 + Math.cos(j * 2.3), ((j * 7919) % 97) / 97], j * 3);
  }
  const r = kmeans({ data, n, d: 3 }, { k: 4, nInit: 10, seed: 0 });
  close(
    ari(
      range(n).map((j) => j % 4),
      r.labels,
    ),
    1,
  );
  close(r.inertia, 649.6246668235772, 1e-6);
  assert.deepEqual(kmeans({ data, n, d: 3 }, { k: 4, seed: 0 }).labels, r.labels, 'reproducible from the seed');
});

test('k-means refuses bad input with a typed ClusteringError naming the problem', () => {
  const data = Float64Array.from([0, 0, 1, 1, 5, 5]);
  const is = (code: string, field: string, text: RegExp) => (e: unknown) =>
    e instanceof ClusteringError && e.code === code && e.field === field && text.test(e.message);
  assert.throws(() => kmeans({ data, n: 3, d: 2 }, { k: 4 }), is('TOO_FEW_POINTS', 'k', /^k: 4 clusters need at least 4 points, got 3$/));
  assert.throws(() => kmeans({ data, n: 3, d: 2 }, { k: 0 }), is('INVALID_OPTION', 'k', /^k: must be an integer >= 1, got 0$/));
  assert.throws(() => kmeans({ data, n: 3, d: 2 }, { k: 1.5 }), is('INVALID_OPTION', 'k', /got 1\.5/));
  assert.throws(() => kmeans({ data: new Float64Array(0), n: 0, d: 2 }, { k: 1 }), is('TOO_FEW_POINTS', 'points', /no points to cluster/));
  assert.throws(() => kmeans({ data, n: 4, d: 2 }, { k: 2 }), is('INVALID_POINTS', 'points', /^points: 6 values do not make 4 rows of 2$/));
  assert.throws(() => kmeans({ data, n: 3, d: 0 }, { k: 2 }), is('INVALID_POINTS', 'points', /d \(values per point\) must be an integer >= 1, got 0/));
  assert.throws(() => kmeans({ data: Float64Array.from([0, 0, NaN, 1]), n: 2, d: 2 }, { k: 1 }), is('INVALID_POINTS', 'points', /row 1 column 0 is NaN/));
  // More values than n x d: the rest is ignored, as before.
  assert.equal(kmeans({ data, n: 2, d: 2 }, { k: 2, seed: 0 }).labels.length, 2);
});

/** The least total cost of giving each row of the smaller side a distinct column (or row), by trying every injection. */
function bruteForceCost(m: number[][]): number {
  const rows = m.length;
  const cols = m[0]?.length ?? 0;
  const at = rows <= cols ? (r: number, c: number) => m[r]?.[c] as number : (r: number, c: number) => m[c]?.[r] as number;
  const [n, k] = rows <= cols ? [rows, cols] : [cols, rows];
  const best = (r: number, used: Set<number>): number =>
    r === n
      ? 0
      : Math.min(
          ...range(k)
            .filter((c) => !used.has(c))
            .map((c) => at(r, c) + best(r + 1, new Set([...used, c]))),
        );
  return best(0, new Set());
}

test('the Hungarian algorithm on rectangular matrices (wide and tall) finds the brute-force minimum', () => {
  const wide = Array.from({ length: 3 }, (_, r) => Array.from({ length: 7 }, (_, c) => ((r * 11 + c * 5 + r * c * 3) % 13) + 1));
  const tall = wide[0]!.map((_, c) => wide.map((row) => row[c] as number));
  for (const m of [wide, tall]) {
    const a = hungarian(m);
    assert.equal(a.length, m.length);
    const assigned = a.filter((c) => c >= 0);
    assert.equal(assigned.length, Math.min(m.length, m[0]!.length), 'the smaller side is matched in full');
    assert.equal(new Set(assigned).size, assigned.length, 'distinct columns');
    assert.equal(
      a.reduce((s, c, r) => s + (c >= 0 ? (m[r]?.[c] as number) : 0), 0),
      bruteForceCost(m),
    );
  }
  assert.deepEqual(hungarian([]), []);
  assert.throws(
    () => hungarian([[1, 2], [3]]),
    (e: unknown) => e instanceof ClusteringError && e.code === 'INVALID_OPTION' && /row 1 has 1 values/.test(e.message),
  );
  assert.throws(
    () => hungarian([[1, NaN]]),
    (e: unknown) => e instanceof ClusteringError && e.code === 'INVALID_POINTS' && /row 0 column 1 is NaN/.test(e.message),
  );
});

test('cluster accuracy with more clusters than classes, or fewer, matches brute force; 1000 clusters against 10 labels', () => {
  const i = range(60);
  for (const [y, c] of [
    [i.map((x) => x % 3), i.map((x) => (x * x + x) % 7)],
    [i.map((x) => (x * 5) % 4), i.map((x) => Math.floor(x / 7) % 2)],
  ] as [number[], number[]][]) {
    const m = confusionMatrix(y, c);
    const correct = -bruteForceCost(m.map((row) => row.map((v) => -v)));
    close(hungarianAccuracy(y, c).accuracy, correct / y.length);
  }
  // Every cluster is pure (5 points of one class): the best matching takes one cluster per class.
  const n = 5000;
  const h = hungarianAccuracy(
    range(n).map((x) => x % 10),
    range(n).map((x) => x % 1000),
  );
  close(h.accuracy, (10 * 5) / n);
  assert.equal(h.mapping.length, 1000);
  const matched = h.mapping.filter((v) => v < 10);
  assert.deepEqual(
    [...matched].sort((a, b) => a - b),
    range(10),
    'each class matched to one cluster',
  );
  h.mapping.forEach((v, id) => assert.ok(v >= 10 || v === id % 10, `cluster ${id} is matched to its own class`));
  assert.equal(new Set(h.mapping).size, 1000);
});

test('scores take any integer labels (not only 0..k-1) and refuse a label that is not an integer, naming it', () => {
  // Renaming the labels changes no score: -1 (a noise label), sparse and large ids give the 0..k-1 scores.
  const y = [0, 0, 0, 1, 1, 1, 2, 2, 2];
  const c = [1, 1, 0, 2, 2, 2, 0, 0, 0];
  const want = scoreClustering(y, c);
  const rename = (labels: number[], names: number[]): number[] => labels.map((l) => names[l] as number);
  assert.deepEqual(scoreClustering(rename(y, [-1, 7, 3]), rename(c, [5000, -1, 12])), want);
  // A cluster id of 100000 neither builds a 100001-row cost matrix nor hangs the Hungarian algorithm.
  const h = hungarianAccuracy([0, 0, 1, 1], [0, 0, 100_000, 100_000]);
  assert.equal(h.accuracy, 1);
  assert.equal(h.mapping.length, 100_001);
  assert.equal(h.mapping[0], 0);
  assert.equal(h.mapping[100_000], 1);
  assert.equal(new Set(h.mapping).size, 100_001, 'ids no point has map to distinct values past the classes');
  assert.ok((h.mapping[1] as number) >= 2);
  // The mapping is still by the cluster ids themselves.
  assert.deepEqual(hungarianAccuracy(y, c).mapping, [2, 0, 1]);
  const is = (code: string, field: string, text: string) => (e: unknown) =>
    e instanceof ClusteringError && e.code === code && e.field === field && e.message.includes(text);
  assert.throws(() => scoreClustering([0, 0.5, 1], [0, 0, 1]), is('INVALID_POINTS', 'classes', 'label 1 is 0.5'));
  assert.throws(() => nmi([0, 1, 1], [0, NaN, 1]), is('INVALID_POINTS', 'clusters', 'label 1 is NaN'));
  assert.throws(() => confusionMatrix([0, -1], [0, 1]), is('INVALID_POINTS', 'classes', 'label 1 is -1'));
  assert.throws(() => scoreClustering([], []), is('TOO_FEW_POINTS', 'classes', 'no points'));
  assert.throws(() => scoreClustering([0, 1, 1], [0, 1]), is('INVALID_POINTS', 'clusters', '2 cluster assignments for 3 labels'));
  assert.throws(() => confusionMatrix([0, 1], [0, 1, 1]), is('INVALID_POINTS', 'clusters', '3 cluster assignments for 2 labels'));
  // One point: a perfect match (scikit-learn's convention), not 0 / 0.
  assert.deepEqual(scoreClustering([3], [0]), { accuracy: 1, nmi: 1, ari: 1, purity: 1 });
});
