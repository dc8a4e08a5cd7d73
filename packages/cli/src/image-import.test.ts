import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listImageFolder, loadDataset, parseManifest, readSourcePaths } from '@cvc/data';
import { writeImageTree } from '@cvc/data/testing';
import { createDatasetCatalog, createObjectStore, startS3Server, type S3Server } from '@cvc/storage';
import { main } from './index.js';
import { captureEnv } from './testing.js';
import { importImageFolderToStore } from './s3-import.js';
import { writeTinyEncoder } from './encoder-fixture.js';

/** `cvc dataset import FOLDER --name NAME` into a real local S3 (s3rver). */
let dir: string;
let s3: S3Server;
let clusterFile: string;
let root: string;
const classes = ['Tshirt', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Boot'];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cvc-imgimport-'));
  s3 = await startS3Server(join(dir, 's3'));
  clusterFile = join(dir, 'cluster.json');
  await writeFile(
    clusterFile,
    JSON.stringify({
      coordinator: '127.0.0.1:9',
      s3: { endPoint: s3.endPoint, port: s3.port, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'cvc' },
      security: { insecure: true },
    }),
  );
  const ds = await loadDataset('fashion-mnist', { cacheDir: join(dir, 'cache') });
  root = join(dir, 'photos');
  const paths = await writeImageTree(root, ds.test, 60, { height: 40, width: 40, channels: 3, classNames: classes });
  const jpeg = await readFile(join(root, paths.find((p) => p.endsWith('.jpg')) as string));
  await writeFile(join(root, 'Bag', 'corrupt.jpg'), jpeg.subarray(0, Math.floor(jpeg.length / 2)));
  await writeFile(join(root, 'Coat', 'empty.png'), new Uint8Array(0));
  await writeFile(join(root, 'README.txt'), 'my photos\n');
});
after(async () => {
  await s3.close();
  await rm(dir, { recursive: true, force: true });
});

const store = () => createObjectStore({ endPoint: s3.endPoint, port: s3.port, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'cvc' });
const args = ['--name', 'photos', '--size', '32x32', '--channels', '1', '--folds', '3'];

test('an image folder with bad files fails naming them and registers nothing; --skip-invalid lists them and imports the rest', async () => {
  const failing = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['dataset', 'import', root, ...args, '--cluster', clusterFile], failing), 1, failing.err());
  assert.match(failing.err(), /2 invalid file\(s\).*nothing imported/);
  assert.match(failing.err(), /Bag\/corrupt\.jpg: is truncated/);
  assert.match(failing.err(), /Coat\/empty\.png: is an empty \(zero-byte\) file/);
  assert.deepEqual(await createDatasetCatalog(store()).list('photos'), []);
  assert.deepEqual(await store().list('datasets/photos/'), [], 'no object written');

  const env = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['dataset', 'import', root, ...args, '--skip-invalid', '--cluster', clusterFile], env), 0, env.err());
  const out = env.out();
  assert.match(out, /photos version [0-9a-f]{16} \(3 folds, \d+\/\d+\/\d+\/\d+ images, 32x32x1, fit cover\): imported at datasets\/photos\//);
  assert.match(out, /60 images, 10 classes .*test fraction 0\.1; ignored 0 hidden and 1 non-image file\(s\); skipped 2 invalid file\(s\)/);
  assert.match(out, /skipped Bag\/corrupt\.jpg: is truncated .*\[IMAGE_TRUNCATED\]/);
  assert.match(out, /skipped Coat\/empty\.png: is an empty \(zero-byte\) file \[IMAGE_EMPTY\]/);
  assert.match(env.err(), /importing photos: writing 60\/60 images/);

  const [imp] = await createDatasetCatalog(store()).list('photos');
  assert.ok(imp);
  const m = parseManifest(new TextDecoder().decode(await store().getBytes(imp.manifest)), imp.manifest);
  const get = (n: string): Promise<Uint8Array> => store().getBytes(imp.manifest.replace(/manifest\.json$/, n));
  const paths = [...((await readSourcePaths(m, 'train', get)) ?? []), ...((await readSourcePaths(m, 'test', get)) ?? [])];
  assert.equal(paths.length, 60);
  assert.ok(!paths.includes('Bag/corrupt.jpg') && !paths.includes('Coat/empty.png'));

  // Importing again changes nothing: the same version.
  const again = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['dataset', 'import', root, ...args, '--skip-invalid', '--cluster', clusterFile], again), 0, again.err());
  assert.match(again.out(), new RegExp(`photos version ${m.version} .*already imported, nothing changed`));
  assert.equal((await createDatasetCatalog(store()).list('photos')).length, 1);
  // Already imported: its plan is closed too (the scratch file of decoded pixels is not left open).
  const s3Options = { endPoint: s3.endPoint, port: s3.port, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'cvc' };
  const opts = { name: 'photos', height: 32, width: 32, channels: 1 as const, fit: 'cover' as const, folds: 3, seed: 42, skipInvalid: true };
  const r = await importImageFolderToStore(await listImageFolder(root), opts, s3Options);
  assert.equal(r.added, false);
  assert.equal(r.manifest.version, m.version);
  await assert.rejects(r.plan.spool.read(0), RangeError);
});

test('a class folder only in test/ (a typo of a training folder) is imported with a warning naming it and the training classes', async () => {
  const ds = await loadDataset('fashion-mnist', { cacheDir: join(dir, 'cache') });
  const typo = join(dir, 'typo');
  const opts = { height: 28, width: 28, channels: 1 as const, format: 'png' as const };
  await writeImageTree(typo, ds.test, 30, { ...opts, classNames: classes });
  await writeImageTree(join(typo, 'test'), ds.test, 30, { ...opts, classNames: classes.map((c) => (c === 'Bag' ? 'bags' : c)) });
  const env = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['dataset', 'import', typo, '--name', 'typo', '--folds', '3', '--out', join(dir, 'typo-out')], env), 0, env.err());
  const bags = ds.test.labels.subarray(0, 30).filter((l) => l === 8).length;
  assert.ok(bags > 0);
  assert.match(
    env.err(),
    new RegExp(
      `warning: class 'bags' has ${bags} image\\(s\\) in test/ and none for training, so no fold learns it \\(a typo of a training folder\\? those are: Bag, `,
    ),
  );
  assert.equal(env.err().match(/warning: class/g)?.length, 1, env.err());
  assert.match(env.out(), /11 classes/);
});

test('image-folder flags are checked: --size, --channels, --fit, --test-fraction, a missing --name, --limit', async () => {
  const bad: [string[], RegExp][] = [
    [['--name', 'p', '--size', '0x3'], /--size must be HxW/],
    [['--name', 'p', '--size', 'big'], /--size must be HxW/],
    [['--name', 'p', '--channels', '2'], /--channels must be one of 1, 3/],
    [['--name', 'p', '--fit', 'crop'], /--fit must be one of cover, contain, fill/],
    [['--name', 'p', '--test-fraction', '1.5'], /--test-fraction/],
    [['--size', '32x32'], /needs --name NAME/],
    [['--name', 'p', '--limit', '10'], /--limit is not an option of an image-folder import/],
  ];
  for (const [flags, message] of bad) {
    const env = captureEnv(join(dir, 'cache'));
    assert.equal(await main(['dataset', 'import', root, ...flags, '--out', join(dir, 'x')], env), 2, flags.join(' '));
    assert.match(env.err(), message, flags.join(' '));
  }
  // A folder given without --name is read as a dataset directory; the error says what to add.
  const env = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['dataset', 'import', root, '--out', join(dir, 'x')], env), 1);
  assert.match(env.err(), /no dataset files found.*to import a folder of images give the dataset a name: cvc dataset import .* --name NAME/);
});

test('a stopped image-folder import exits 130 and writes no manifest', async () => {
  const env = captureEnv(join(dir, 'cache'));
  const out = join(dir, 'stopped');
  assert.equal(
    await main(['dataset', 'import', root, ...args, '--skip-invalid', '--out', out], env, { signal: AbortSignal.abort(), handleSignals: false }),
    130,
  );
  assert.match(env.err(), /was cancelled/);
  assert.equal((await readdir(out).catch((): string[] => [])).includes('manifest.json'), false);
});

test('embed/cluster --dataset NAME where ./NAME is the image folder it was imported from: the cluster dataset NAME, not the folder', async () => {
  const imported = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['dataset', 'import', root, ...args, '--skip-invalid', '--cluster', clusterFile], imported), 0, imported.err());
  const enc = join(dir, 'enc-32x32x1');
  await writeTinyEncoder(enc, [32, 32, 1]);
  const cwd = process.cwd();
  process.chdir(dir); // dir/photos is the folder of images
  try {
    const env = captureEnv(join(dir, 'cache'));
    const cmd = ['cluster', '--encoder', enc, '--dataset', 'photos', '--k', '2', '--n-init', '1', '--cluster', clusterFile, '--out', join(dir, 'by-name')];
    assert.equal(await main(cmd, env), 0, env.err());
    assert.match(env.out(), /assignments of \d+ images written/);
    // Its records are named by their source files.
    assert.match(await readFile(join(dir, 'by-name', 'assignments.csv'), 'utf8'), /\n[A-Za-z]+\/\d+\.(png|jpg),/);

    // A folder here whose name no import has: both are said.
    await mkdir(join(dir, 'typo-x', 'a'), { recursive: true });
    const missing = captureEnv(join(dir, 'cache'));
    assert.equal(await main(['embed', '--encoder', enc, '--dataset', 'typo-x', '--cluster', clusterFile, '--out', join(dir, 'c.npy')], missing), 2);
    assert.match(
      missing.err(),
      /typo-x: no dataset files found.*; a folder of images is read with --images typo-x; and no dataset 'typo-x' is imported into the cluster/,
    );
    // A path (no dataset name): the folder is all there is to say about.
    const path = captureEnv(join(dir, 'cache'));
    assert.equal(await main(['embed', '--encoder', enc, '--dataset', './typo-x', '--cluster', clusterFile, '--out', join(dir, 'c.npy')], path), 1);
    assert.match(path.err(), /typo-x: no dataset files found.*; a folder of images is read with --images \.\/typo-x\n/);
  } finally {
    process.chdir(cwd);
  }
});

test('dataset inspect shows an import: a directory written with --out DIR, and a name in the cluster even with its image folder here', async () => {
  const out = join(dir, 'inspect-out');
  const written = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['dataset', 'import', root, ...args, '--skip-invalid', '--out', out], written), 0, written.err());
  const env = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['dataset', 'inspect', out], env), 0, env.err());
  assert.match(
    env.out(),
    /^dataset photos version [0-9a-f]{16} \(imported\) from .*inspect-out\n32x32x1 uint8, 10 classes, 3 folds \(stratified, seed 42\), test: a 0.1 share/,
  );
  assert.match(env.out(), /image folder: fit cover, 2 invalid file\(s\) skipped/);
  assert.match(env.out(), /label\s+class\s+fold 0\s+fold 1\s+fold 2\s+test\n/);
  assert.match(env.out(), /\n\s+all\s+\d+\s+\d+\s+\d+\s+\d+\n/);
  const json = captureEnv(join(dir, 'cache'));
  assert.equal(await main(['dataset', 'inspect', out, '--json'], json), 0, json.err());
  const parsed = JSON.parse(json.out()) as { shape: number[]; shards: { count: number }[]; imageFolder: { fit: string } };
  assert.deepEqual(parsed.shape, [32, 32, 1]);
  assert.equal(
    parsed.shards.reduce((n, s) => n + s.count, 0),
    60,
  );
  assert.equal(parsed.imageFolder.fit, 'cover');

  const cwd = process.cwd();
  process.chdir(dir); // dir/photos is the folder of images
  try {
    const named = captureEnv(join(dir, 'cache'));
    assert.equal(await main(['dataset', 'inspect', 'photos', '--cluster', clusterFile], named), 0, named.err());
    assert.match(named.out(), /^dataset photos version [0-9a-f]{16} \(imported\) from the cluster's object store/);
  } finally {
    process.chdir(cwd);
  }
});
