import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset, selectImages } from '@cvc/data';
import { writeImageTree } from '@cvc/data/testing';
import { loadEncoder } from '@cvc/model';
import { main } from './index.js';
import { captureEnv } from './testing.js';

/** `cvc cv --local` on your own images: a folder imported with `cvc dataset import FOLDER --out DIR`, then cross-validated from DIR. */
let dir: string;
let photos: string;
let imported: string;
const classes = ['Tshirt', 'Trouser', 'Pullover'];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cvc-cvimport-'));
  const ds = await loadDataset('fashion-mnist', { cacheDir: join(dir, 'cache') });
  // The first 60 real Fashion-MNIST test images of the first three classes, 40x40 RGB PNG/JPEG.
  const keep: number[] = [];
  for (let i = 0; i < ds.test.count && keep.length < 60; i++) if ((ds.test.labels[i] as number) < 3) keep.push(i);
  const test3 = selectImages(ds.test, Int32Array.from(keep));
  photos = join(dir, 'photos');
  await writeImageTree(photos, test3, test3.count, { height: 40, width: 40, channels: 3, classNames: classes });
  imported = join(dir, 'photos-ds');
  const env = captureEnv(join(dir, 'cache'));
  const args = ['dataset', 'import', photos, '--name', 'photos', '--size', '16x16', '--channels', '1', '--folds', '2', '--out', imported];
  assert.equal(await main(args, env), 0, env.err());
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cv = ['cv', '--local', '--model', 'cae', '--filters', '4,8', '--code-size', '4', '--epochs', '1', '--batch-size', '16', '--threads', '1'];

test('cv --local --dataset DIR trains on an import written with --out DIR (its 2 folds) and writes the best fold its encoder, which cluster --images takes', async () => {
  const out = join(dir, 'cv');
  const env = captureEnv(join(dir, 'cache'));
  assert.equal(await main([...cv, '--dataset', imported, '--out', out, '--json'], env), 0, env.err());
  const result = JSON.parse(env.out()) as { folds: { fold: number }[]; bestFold: number; datasetVersion: string; encoder: string };
  assert.equal(result.folds.length, 2, 'the import has 2 folds; --folds was not given');
  const manifest = JSON.parse(await readFile(join(imported, 'manifest.json'), 'utf8')) as { version: string };
  assert.equal(result.datasetVersion, manifest.version);
  assert.equal(result.encoder, join(out, 'encoder'));
  const meta = JSON.parse(await readFile(join(out, 'encoder', 'metadata.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(meta['fold'], result.bestFold);
  assert.equal(meta['dataset'], 'photos');
  assert.equal(meta['datasetVersion'], manifest.version);
  assert.equal(meta['fit'], 'cover');
  assert.deepEqual(meta['inputShape'], [16, 16, 1]);
  assert.equal(meta['codeSize'], 4);
  const encoder = await loadEncoder(join(out, 'encoder'));
  assert.deepEqual(encoder.outputs[0]?.shape, [null, 4]);
  encoder.dispose();

  // The encoder sorts the folder the images came from.
  const clustered = captureEnv(join(dir, 'cache'));
  assert.equal(
    await main(['cluster', '--encoder', join(out, 'encoder'), '--images', photos, '--k', '3', '--n-init', '2', '--out', join(dir, 'clusters')], clustered),
    0,
    clustered.err(),
  );
  assert.match(clustered.out(), /60 images, 4-d codes, k=3/);
  const csv = (await readFile(join(dir, 'clusters', 'assignments.csv'), 'utf8')).trim().split('\n');
  assert.equal(csv.length, 61);
});

test('cv --local on an import refuses --folds other than its own, --limit and --fold-scheme, naming the flag (exit 2)', async () => {
  for (const [flags, pattern] of [
    [['--folds', '3'], /folds: .*photos-ds \(dataset photos version [0-9a-f]{16}\) was imported with 2 folds, not 3/],
    [['--limit', '20'], /limit: --limit applies to a built-in dataset/],
    [['--fold-scheme', 'seed'], /fold-scheme: --fold-scheme applies to a built-in dataset/],
  ] as const) {
    const env = captureEnv(join(dir, 'cache'));
    assert.equal(await main([...cv, '--dataset', imported, ...flags, '--out', join(dir, 'refused')], env), 2, env.err());
    assert.match(env.err(), pattern);
  }
});

test('cv --local on a folder of images says to import it first (exit 1)', async () => {
  const env = captureEnv(join(dir, 'cache'));
  assert.equal(await main([...cv, '--dataset', photos, '--out', join(dir, 'refused')], env), 1, env.err());
  assert.match(
    env.err(),
    /a folder of images is imported first \(cvc dataset import .*photos --name NAME --out DIR\) and then cross-validated with cvc cv --local --dataset DIR/,
  );
});

test('cv --local without --out names its directory by the last part of the dataset path', async () => {
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const env = captureEnv(join(dir, 'cache'));
    assert.equal(await main([...cv, '--dataset', './photos-ds/'], env), 0, env.err());
    assert.match(env.out(), /results in runs\/cae-photos-ds; the best fold's encoder in runs\/cae-photos-ds\/encoder\n/);
    assert.ok(existsSync(join(dir, 'runs', 'cae-photos-ds', 'encoder', 'model.json')));
  } finally {
    process.chdir(cwd);
  }
});

test('cv --local --model-config FILE: a config that does not fit the import names the file and the field (exit 2)', async () => {
  const file = join(dir, 'pool3.json');
  await writeFile(file, JSON.stringify({ encoder: [{ filters: 4, pool: 3 }, { filters: 8 }], codeSize: 4 }));
  const env = captureEnv(join(dir, 'cache'));
  const argv = ['cv', '--local', '--dataset', imported, '--model-config', file, '--epochs', '1', '--out', join(dir, 'refused')];
  assert.equal(await main(argv, env), 2, env.err());
  assert.match(env.err(), /pool3\.json: encoder\[0\]\.pool: pool 3 does not divide the 16x16 map/);
});

test('cv --local: a seed preset or --model cae flags that do not fit the import say what to change', async () => {
  const preset = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['cv', '--local', '--dataset', imported, '--model', 'seed-mnist', '--epochs', '1', '--out', join(dir, 'refused')], preset), 2);
  assert.match(preset.err(), /the model takes 28x28x1 images, the dataset's are 16x16x1 .*; --model cae or --model-config FILE take the dataset's 16x16/);
  const deep = captureEnv(join(dir, 'cache'));
  const argv = ['cv', '--local', '--dataset', imported, '--model', 'cae', '--filters', '4,4,4,4,8', '--epochs', '1', '--out', join(dir, 'refused')];
  assert.equal(await main(argv, deep), 2);
  assert.match(
    deep.err(),
    /encoder\[3\]\.kernel: kernel 3 is larger than the 2x2 map it convolves; with --model cae every block but the last max-pools 2x2, so 5 --filters need sides divisible by 16 .*: give fewer --filters/,
  );
});
