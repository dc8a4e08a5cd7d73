import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { pca2d, ReportError, writeClusterReport, type ClusterReportInput } from './index.js';
import { clusterMembers, matchClusters } from './cluster-summary.js';

/** 30 images of 8x8: class c has a bright band in row block c; cluster = class except images 0 and 1. */
function fixture(): ClusterReportInput {
  const n = 30;
  const images = new Uint8Array(n * 64);
  const labels = new Uint8Array(n);
  const assignments = new Int32Array(n);
  const confidence = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    labels[i] = c;
    assignments[i] = i === 0 ? 0 : i === 1 ? 2 : ([1, 0, 2][c] as number); // a permutation of the classes, 2 mistakes
    confidence[i] = i < 2 ? -10 : i;
    for (let p = 0; p < 64; p++) images[i * 64 + p] = Math.floor(p / 8) >= c * 2 && Math.floor(p / 8) < c * 2 + 3 ? 200 + (i % 50) : 10;
  }
  return {
    images: { images, count: n, height: 8, width: 8, channels: 1 },
    assignments,
    confidence,
    labels,
    classNames: ['top', 'middle', 'bottom'],
    methods: [
      { name: 'encoder+kmeans', acc: 0.9, nmi: 0.8, ari: 0.7, seconds: 1.5 },
      { name: 'pixels+kmeans', acc: 0.5, nmi: 0.4, seconds: 0.5 },
    ],
    method: 'encoder+kmeans',
    gridSide: 3,
    leastCount: 2,
  };
}

test('writeClusterReport: a picture per cluster, the 2-D map with two panels, the confusion matrix and report.md with every method', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-cluster-report-'));
  try {
    const input = fixture();
    const files = await writeClusterReport(join(dir, 'rep'), input);
    assert.deepEqual(files.clusters, ['cluster-00.png', 'cluster-01.png', 'cluster-02.png']);
    assert.deepEqual((await readdir(join(dir, 'rep'))).sort(), ['cluster-00.png', 'cluster-01.png', 'cluster-02.png', 'confusion.png', 'map.png', 'report.md']);
    for (const f of [...files.clusters, 'map.png', 'confusion.png']) {
      const png = PNG.sync.read(await readFile(join(dir, 'rep', f)));
      assert.ok(png.width >= 200 && png.height >= 100, `${f}: ${png.width}x${png.height}`);
    }
    // 8x8 images at scale round(84/8) = 11: 3 tiles of 90 = 272 wide, under the 360-pixel minimum for the heading.
    const grid = PNG.sync.read(await readFile(join(dir, 'rep', 'cluster-02.png'))); // 11 members: 9 most confident, 2 least
    assert.equal(grid.width, 360);
    assert.equal(
      grid.height,
      34 + 22 + 3 * (8 * 11 + 4 + 15) + 8 + 22 + (8 * 11 + 4 + 15) + 8,
      'heading, 3 rows of the most confident and one row of the least, captioned',
    );
    const md = await readFile(join(dir, 'rep', 'report.md'), 'utf8');
    assert.match(md, /^# Clustering report\n/);
    assert.match(md, /30 images, 3 clusters, 3 true classes\. The pictures show the clusters of \*\*encoder\+kmeans\*\*/);
    assert.match(md, /\| encoder\+kmeans \| \*\*0\.9000\*\* \| \*\*0\.8000\*\* \| 0\.7000 \| 1\.50 \|/);
    assert.match(md, /\| pixels\+kmeans \| 0\.5000 \| 0\.4000 \| – \| \*\*0\.50\*\* \|/);
    assert.match(md, /!\[2-D map\]\(map\.png\)/);
    assert.match(md, /PCA of the pixels to 2 dimensions, coloured by cluster \(left\) and by true class \(right\)/);
    assert.match(md, /!\[confusion matrix\]\(confusion\.png\)/);
    for (const f of files.clusters) assert.ok(md.includes(`](${f})`), f);
    // Cluster 2 holds the 10 class-2 images ('bottom') and image 1 (class 1); cluster 0 the other class-1 images and image 0.
    assert.match(md, /\| 2 \| 11 \| bottom \| 91% \| bottom \| 91% \|/);
    assert.match(md, /\| 0 \| 10 \| middle \| 90% \| middle \| 90% \|/);
    assert.match(md, /\| 1 \| 9 \| top \| 100% \|/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('writeClusterReport without labels: no confusion matrix, a one-panel map of the given coordinates', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-cluster-report-'));
  try {
    const rest = { ...fixture(), labels: undefined, classNames: undefined };
    const coords = Float64Array.from({ length: 60 }, (_, i) => Math.sin(i));
    const files = await writeClusterReport(dir, { ...rest, methods: [], coords, coordsName: 'UMAP' });
    assert.equal(files.confusion, undefined);
    assert.ok(!(await readdir(dir)).includes('confusion.png'));
    const md = await readFile(join(dir, 'report.md'), 'utf8');
    assert.match(md, /UMAP of the codes to 2 dimensions, coloured by cluster\./);
    assert.match(md, /No method was scored/);
    assert.match(md, /\| cluster \| images \| picture \|/);
    const map = PNG.sync.read(await readFile(join(dir, 'map.png')));
    assert.ok(map.width < 800, `one panel: ${map.width}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('writeClusterReport rejects inputs of the wrong length, naming the field', async () => {
  const input = fixture();
  await assert.rejects(writeClusterReport(join(tmpdir(), 'never'), { ...input, confidence: new Float64Array(3) }), (e: unknown) => {
    assert.ok(e instanceof ReportError);
    assert.equal(e.code, 'BAD_INPUT');
    assert.match(e.message, /confidence: 3 values for 30 images/);
    return true;
  });
  await assert.rejects(writeClusterReport(join(tmpdir(), 'never'), { ...input, coords: [1, 2] }), /coords: 2 values; a 2-D map of 30 images needs 60/);
  await assert.rejects(
    writeClusterReport(join(tmpdir(), 'never'), { ...input, assignments: new Int32Array(30).fill(-1) }),
    /assignments: image 0 has cluster -1/,
  );
});

test('members sort by confidence, highest first; the Hungarian matching maximises agreement', () => {
  assert.deepEqual(clusterMembers([0, 1, 0, 0], [0.2, 5, 0.9, 0.2], 3), [[2, 0, 3], [1], []]);
  assert.deepEqual(
    matchClusters([
      [0, 5, 1],
      [4, 4, 0],
      [0, 0, 3],
    ]),
    [1, 0, 2],
  );
  assert.deepEqual(matchClusters([[3], [5]]), [-1, 0], 'more clusters than classes: one is unmatched');
  assert.deepEqual(matchClusters([[0, 2, 5]]), [2], 'fewer clusters than classes');
  // 1000 clusters of one class each against 10 classes: one cluster per class, the biggest of its class.
  const many = Array.from({ length: 1000 }, (_, r) => Array.from({ length: 10 }, (_, c) => (c === r % 10 ? 1 + (r === 500 + c ? 9 : 0) : 0)));
  const m = matchClusters(many);
  assert.deepEqual(
    m.flatMap((c, r) => (c >= 0 ? [[r, c]] : [])),
    Array.from({ length: 10 }, (_, c) => [500 + c, c]),
  );
});

test('pca2d: the first axis follows the largest spread, reproducibly, with a fixed sign', () => {
  // Points along (1, 1, 0) with spread 10, along (1, -1, 0) with spread 1, offset by (5, 5, 5).
  const data: number[] = [];
  for (let i = 0; i < 40; i++) {
    const a = ((i % 10) - 4.5) * 2;
    const b = (Math.floor(i / 10) - 1.5) * 0.6;
    data.push(5 + a + b, 5 + a - b, 5);
  }
  const xy = pca2d({ data, n: 40, d: 3 });
  const again = pca2d({ data, n: 40, d: 3 });
  assert.deepEqual([...xy], [...again]);
  for (let i = 0; i < 40; i++) {
    const a = ((i % 10) - 4.5) * 2;
    const b = (Math.floor(i / 10) - 1.5) * 0.6;
    assert.ok(Math.abs(Math.abs(xy[2 * i] as number) - Math.abs(a) * Math.SQRT2) < 1e-6, `x of ${i}`);
    assert.ok(Math.abs(Math.abs(xy[2 * i + 1] as number) - Math.abs(b) * Math.SQRT2) < 1e-6, `y of ${i}`);
  }
  // The first axis' largest loading is positive: (1, 1, 0)/sqrt(2), so point 0 (a = -9) lies at negative x.
  assert.ok((xy[0] as number) < 0);
});
