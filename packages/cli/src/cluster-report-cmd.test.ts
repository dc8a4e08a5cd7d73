import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { randomImageSet, writeIdxDataset } from '@cvc/data/testing';
import { main } from './index.js';
import { captureEnv } from './testing.js';
import { writeTinyEncoder } from './encoder-fixture.js';

test('cluster --report DIR: a picture per cluster, the map, the confusion matrix and report.md with every scored method', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-cluster-report-cmd-'));
  try {
    const data = join(dir, 'data');
    await writeIdxDataset(data, randomImageSet(20, 8, 8, 1, 1, 3), randomImageSet(24, 8, 8, 1, 2, 3));
    await writeTinyEncoder(join(dir, 'enc'), [8, 8, 1]);
    const rep = join(dir, 'rep');
    const args = [
      'cluster',
      '--encoder',
      join(dir, 'enc'),
      '--dataset',
      data,
      '--k',
      '3',
      '--n-init',
      '2',
      '--out',
      join(dir, 'out'),
      '--baseline',
      '--dec-centres',
    ];
    const env = captureEnv(join(dir, 'cache'));
    assert.equal(await main([...args, '--report', rep, '--json'], env), 0, env.err());
    const json = JSON.parse(env.out()) as { results: Record<string, unknown> };
    assert.deepEqual(Object.keys(json.results).sort(), ['encoder+dec-centres', 'encoder+kmeans', 'pixels+dec-centres', 'pixels+kmeans']);
    assert.match(env.err(), /cluster report written to .*rep: report\.md, map\.png, confusion\.png, 3 cluster pictures/);
    assert.deepEqual((await readdir(rep)).sort(), ['cluster-00.png', 'cluster-01.png', 'cluster-02.png', 'confusion.png', 'map.png', 'report.md']);
    for (const f of ['cluster-00.png', 'map.png', 'confusion.png']) assert.ok(PNG.sync.read(await readFile(join(rep, f))).width > 100, f);
    const md = await readFile(join(rep, 'report.md'), 'utf8');
    assert.match(md, /^# Clusters of 24 images \(k=3, encoder\+dec-centres\)/);
    for (const m of Object.keys(json.results))
      assert.match(md, new RegExp(`^\\| ${m.replace('+', '\\+')} \\| [*\\d.]+ \\| [*\\d.]+ \\| [*\\d.-]+ \\| [*\\d.]+ \\|$`, 'm'), m);
    assert.match(md, /PCA of the 3-d codes to 2 dimensions/);
    assert.match(md, /Least confident: `test:\d+`/);

    // Without --dec-centres, the pictures are of k-means; the summary goes to stdout.
    const plain = captureEnv(join(dir, 'cache'));
    assert.equal(await main([...args.slice(0, -2), '--report', join(dir, 'rep2')], plain), 0, plain.err());
    assert.match(plain.out(), /cluster report written to .*rep2: report\.md/);
    assert.match(await readFile(join(dir, 'rep2', 'report.md'), 'utf8'), /^# Clusters of 24 images \(k=3, encoder\+kmeans\)/);

    // With a UMAP step the map is a 2-D UMAP of the codes, not the PCA.
    const um = captureEnv(join(dir, 'cache'));
    const umArgs = [...args.slice(0, -2), '--manifold', 'umap', '--umap-dims', '2', '--neighbors', '5', '--report', join(dir, 'rep3')];
    assert.equal(await main(umArgs, um), 0, um.err());
    const umMd = await readFile(join(dir, 'rep3', 'report.md'), 'utf8');
    assert.match(umMd, /^# Clusters of 24 images \(k=3, encoder\+umap\+kmeans\)/);
    assert.match(umMd, /UMAP of the 3-d codes to 2 dimensions/);
    assert.doesNotMatch(umMd, /PCA of/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
