import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cp, link, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  checkImageFolder,
  decodeImage,
  decodeImageBytes,
  decodeShard,
  directorySink,
  headImages,
  InvalidImagesError,
  listImageFolder,
  loadDataset,
  readSourcePaths,
  writeImageFolder,
  DataError,
  DEFAULT_SCRATCH_BYTES,
  scratchCap,
  type Dataset,
  type DatasetManifest,
} from './index.js';
import { writeImageTree } from './testing.js';

/**
 * Image folders from real Fashion-MNIST test images written as PNG and JPEG
 * at 40x40 RGB (Debian's dataset-fashion-mnist), with every kind of bad file.
 */
let dir: string;
let ds: Dataset;
const classes = ['Tshirt', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Boot'];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cvc-imgfolder-'));
  ds = await loadDataset('fashion-mnist', { cacheDir: join(dir, 'cache') });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A labeled tree of `n` images (+ a test/ folder of `t` when t > 0), optionally with every bad file. */
async function tree(name: string, n: number, t: number, bad: boolean): Promise<string> {
  const root = join(dir, name);
  await writeImageTree(root, ds.test, n, { height: 40, width: 40, channels: 3, classNames: classes });
  if (t > 0) {
    const rest = { ...ds.test, images: ds.test.images.subarray(n * 784), labels: ds.test.labels.subarray(n) };
    await writeImageTree(join(root, 'test'), headImages({ ...rest, count: ds.test.count - n }, t), t, {
      height: 40,
      width: 40,
      channels: 3,
      classNames: classes,
    });
  }
  if (bad) {
    for (const c of ['Bag', 'Coat', 'Dress', 'Shirt', 'Sandal']) await mkdir(join(root, c), { recursive: true });
    const jpeg = await readFile(join(root, (await readdir(join(root, 'Trouser'))).map((f) => `Trouser/${f}`).find((f) => f.endsWith('.jpg')) as string));
    await writeFile(join(root, 'Bag', 'corrupt.jpg'), jpeg.subarray(0, Math.floor(jpeg.length / 2)));
    await writeFile(join(root, 'Coat', 'empty.png'), new Uint8Array(0));
    await writeFile(join(root, 'Dress', 'notes.png'), 'this is text, not a PNG\n');
    await writeFile(join(root, 'README.txt'), 'my photos\n');
    await writeFile(join(root, 'Coat', '.DS_Store'), 'x');
    await symlink('loop.jpg', join(root, 'Shirt', 'loop.jpg'));
    await symlink('..', join(root, 'Shirt', 'again'));
    await writeFile(
      join(dir, 'outside.png'),
      await sharp({ create: { width: 8, height: 8, channels: 3, background: '#fff' } })
        .png()
        .toBuffer(),
    );
    await symlink(join(dir, 'outside.png'), join(root, 'Sandal', 'escape.png'));
  }
  return root;
}

const BAD = {
  'Bag/corrupt.jpg': 'IMAGE_TRUNCATED',
  'Coat/empty.png': 'IMAGE_EMPTY',
  'Dress/notes.png': 'NOT_AN_IMAGE',
  'Shirt/loop.jpg': 'SYMLINK_LOOP',
  'Shirt/again': 'SYMLINK_LOOP',
  'Sandal/escape.png': 'PATH_ESCAPES',
};

test('a class-folder tree lists labels, class names, the test/ split and paths; hidden, non-image and bad files are counted or reported', async () => {
  const root = await tree('listed', 60, 20, true);
  const l = await listImageFolder(root);
  assert.equal(l.labeled, true);
  assert.equal(l.testFolder, true);
  assert.deepEqual(l.classNames, [...classes].sort());
  const train = l.entries.filter((e) => e.split === 'train');
  const test = l.entries.filter((e) => e.split === 'test');
  // 60 written + corrupt + empty + notes (the loop and the escape are problems, not entries).
  assert.equal(train.length, 63);
  assert.equal(test.length, 20);
  for (const e of l.entries) {
    const cls = e.split === 'test' ? e.path.split('/')[1] : e.path.split('/')[0];
    assert.equal(l.classNames[e.label], cls, e.path);
  }
  assert.ok(test.every((e) => e.path.startsWith('test/')));
  assert.deepEqual(l.ignored, { hidden: 1, notImage: 1 });
  assert.deepEqual(Object.fromEntries(l.problems.map((p) => [p.path, p.code])), {
    'Shirt/loop.jpg': 'SYMLINK_LOOP',
    'Shirt/again': 'SYMLINK_LOOP',
    'Sandal/escape.png': 'PATH_ESCAPES',
  });
  assert.match(l.problems.find((p) => p.code === 'PATH_ESCAPES')?.reason ?? '', /outside the folder/);
});

test('decodeImage resizes, converts channels and fits (cover, contain, fill); PNG pixels come back exactly', async () => {
  const root = join(dir, 'decode');
  await writeImageTree(root, ds.test, 2, { height: 28, width: 28, channels: 1, format: 'png' });
  const px = await decodeImage(join(root, '000000.png'), { height: 28, width: 28, channels: 1 });
  assert.deepEqual(px, ds.test.images.subarray(0, 784));
  const rgb = await decodeImage(join(root, '000000.png'), { height: 14, width: 10, channels: 3 });
  assert.equal(rgb.length, 14 * 10 * 3);
  assert.equal(rgb[3 * 77], rgb[3 * 77 + 1]); // grey in, equal channels out
  // 20 rows x 40 columns: the first 10 columns black, the rest white.
  const raw = Buffer.alloc(20 * 40, 255);
  for (let y = 0; y < 20; y++) raw.fill(0, y * 40, y * 40 + 10);
  const wide = join(dir, 'wide.png');
  await sharp(raw, { raw: { width: 40, height: 20, channels: 1 } })
    .png()
    .toFile(wide);
  const o = { height: 20, width: 20, channels: 1 } as const;
  const cover = await decodeImage(wide, { ...o, fit: 'cover' });
  const fill = await decodeImage(wide, { ...o, fit: 'fill' });
  const contain = await decodeImage(wide, { ...o, fit: 'contain' });
  const at = (a: Uint8Array, y: number, x: number): number => a[y * 20 + x] as number;
  assert.ok(at(cover, 10, 0) > 200, 'cover crops the centre: the black columns are cut off');
  assert.ok(at(fill, 10, 0) < 50 && at(fill, 10, 19) > 200, 'fill squeezes: the black columns stay');
  assert.ok(at(contain, 0, 15) < 50 && at(contain, 10, 15) > 200, 'contain letterboxes: black bars above and below');
});

test('each bad file gets its own error naming the file', async () => {
  const root = await tree('bad', 10, 0, true);
  for (const [path, code] of Object.entries(BAD)) {
    if (code === 'PATH_ESCAPES' || path === 'Shirt/again') continue; // listing-level problems
    await assert.rejects(decodeImage(join(root, path), { height: 8, width: 8, channels: 1 }, path), (err: unknown) => {
      assert.ok(err instanceof DataError, String(err));
      assert.equal(err.code, code, `${path}: ${err.message}`);
      assert.ok(err.message.startsWith(`${path}: `), err.message);
      return true;
    });
  }
});

test('importing fails naming every bad file and writes nothing; --skip-invalid lists them and imports the rest with source paths', async () => {
  const root = await tree('import', 60, 20, true);
  const l = await listImageFolder(root);
  const out = join(dir, 'import-out');
  const opts = { name: 'photos', height: 32, width: 32, channels: 1 as const, folds: 3, seed: 7 };
  await assert.rejects(checkImageFolder(l, opts), (err: unknown) => {
    assert.ok(err instanceof InvalidImagesError);
    assert.deepEqual(Object.fromEntries(err.problems.map((p) => [p.path, p.code])), BAD);
    for (const p of Object.keys(BAD)) assert.ok(err.message.includes(p), err.message);
    return true;
  });
  assert.deepEqual(await readdir(out).catch(() => []), [], 'nothing written');

  const skipped: string[] = [];
  const plan = await checkImageFolder(l, { ...opts, skipInvalid: true }, { onSkip: (p) => skipped.push(p.path) });
  assert.deepEqual(skipped.sort(), Object.keys(BAD).sort());
  const m = await writeImageFolder(plan, directorySink(out));
  assert.equal(m.imageFolder?.skipped, 6);
  assert.deepEqual(m.imageFolder?.test, { from: 'folder' });
  assert.deepEqual([m.height, m.width, m.channels], [32, 32, 1]);
  assert.deepEqual(m.classNames, [...classes].sort());
  assert.deepEqual(
    m.shards.map((s) => s.count),
    [20, 20, 20, 20],
  );
  const get = (n: string): Promise<Uint8Array> => readFile(join(out, n));
  const trainPaths = (await readSourcePaths(m, 'train', get)) as string[];
  const testPaths = (await readSourcePaths(m, 'test', get)) as string[];
  assert.equal(trainPaths.length, 60);
  assert.ok(testPaths.every((p) => p.startsWith('test/')));
  // Every record maps back to its file: label = its folder, pixels = the file decoded.
  for (const s of m.shards) {
    const shard = decodeShard(await get(s.name), s.name);
    const paths = s.split === 'test' ? testPaths : trainPaths;
    for (let r = 0; r < shard.set.count; r += 7) {
      const p = paths[shard.indices[r] as number] as string;
      const cls = s.split === 'test' ? p.split('/')[1] : p.split('/')[0];
      assert.equal(m.classNames[shard.set.labels[r] as number], cls, p);
      assert.deepEqual(shard.set.images.subarray(r * 1024, (r + 1) * 1024), await decodeImage(join(root, p), { height: 32, width: 32, channels: 1 }));
    }
  }
  // Stratified folds: each class spread evenly (at most one apart).
  const trainShards = m.shards.filter((s) => s.split === 'train');
  for (let c = 0; c < m.numClasses; c++) {
    const counts = trainShards.map((s) => s.classCounts[c] as number);
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `class ${c}: ${counts.join('/')}`);
  }

  // The same folder and settings: the same version, byte for byte; other settings: another.
  const again = await writeImageFolder(await checkImageFolder(await listImageFolder(root), { ...opts, skipInvalid: true }), directorySink(join(dir, 'again')));
  assert.deepEqual(again, m);
  const other = await checkImageFolder(l, { ...opts, fit: 'fill', skipInvalid: true });
  assert.notEqual(other.version, m.version);
  await other.close();
});

test('a flat folder is unlabeled; without test/ a seeded fraction is held out; default size and channels come from the first image', async () => {
  const root = join(dir, 'flat');
  await writeImageTree(root, ds.test, 50, { height: 40, width: 40, channels: 3 });
  const l = await listImageFolder(root);
  assert.equal(l.labeled, false);
  assert.deepEqual(l.classNames, []);
  const plan = await checkImageFolder(l, { name: 'flat', folds: 2, seed: 1, testFraction: 0.2 });
  const m = await writeImageFolder(plan, directorySink(join(dir, 'flat-out')));
  assert.deepEqual([m.height, m.width, m.channels], [40, 40, 3]);
  assert.equal(m.imageFolder?.labeled, false);
  assert.deepEqual(m.imageFolder?.test, { from: 'fraction', fraction: 0.2 });
  assert.deepEqual(
    m.shards.map((s) => s.count),
    [20, 20, 10],
  );
  const all = [...plan.train, ...plan.test].map((e) => e.path).sort();
  assert.deepEqual(all, l.entries.map((e) => e.path).sort(), 'every file in exactly one split');
  const again = await checkImageFolder(l, { name: 'flat', folds: 2, seed: 1, testFraction: 0.2 });
  assert.deepEqual(
    again.test.map((e) => e.path),
    plan.test.map((e) => e.path),
    'seeded',
  );
  const reseeded = await checkImageFolder(l, { name: 'flat', folds: 2, seed: 2, testFraction: 0.2 });
  assert.notDeepEqual(
    reseeded.test.map((e) => e.path),
    plan.test.map((e) => e.path),
  );
  await again.close();
  await reseeded.close();
});

test('a folder with class folders and loose images, or with no images, is refused', async () => {
  const root = join(dir, 'mixed');
  await writeImageTree(join(root, 'a'), ds.test, 2, { height: 8, width: 8, channels: 1 });
  await writeImageTree(root, ds.test, 1, { height: 8, width: 8, channels: 1 });
  await assert.rejects(listImageFolder(root), { code: 'IMAGE_FOLDER_INVALID' });
  const empty = join(dir, 'empty');
  await mkdir(empty);
  await writeFile(join(empty, 'notes.txt'), 'x');
  await assert.rejects(listImageFolder(empty), { code: 'IMAGE_FOLDER_EMPTY' });
});

test('an abort stops either pass: nothing is returned, no manifest exists to store', async () => {
  const root = join(dir, 'abort');
  await writeImageTree(root, ds.test, 30, { height: 28, width: 28, channels: 1, classNames: classes });
  const l = await listImageFolder(root);
  const opts = { name: 'a', folds: 2, seed: 1 };
  const ac = new AbortController();
  await assert.rejects(checkImageFolder(l, opts, { signal: ac.signal, onProgress: (_phase, done) => done === 5 && ac.abort() }), { name: 'CancelledError' });
  const plan = await checkImageFolder(l, opts);
  const ac2 = new AbortController();
  const written: string[] = [];
  const sink = directorySink(join(dir, 'abort-out'));
  await assert.rejects(
    writeImageFolder(
      plan,
      async (name, chunks) => {
        written.push(name);
        return sink(name, chunks);
      },
      { signal: ac2.signal, onProgress: (_phase, done) => done === 20 && ac2.abort() },
    ),
    { name: 'CancelledError' },
  );
  assert.ok(!written.includes('test.cvcs'), written.join(', '));
});

test('a sources file that does not match its manifest entry is refused', async () => {
  const root = join(dir, 'sources');
  await writeImageTree(root, ds.test, 12, { height: 28, width: 28, channels: 1 });
  const out = join(dir, 'sources-out');
  const m: DatasetManifest = await writeImageFolder(await checkImageFolder(await listImageFolder(root), { name: 's', folds: 2, seed: 1 }), directorySink(out));
  const get = (n: string): Promise<Uint8Array> => readFile(join(out, n));
  assert.equal((await readSourcePaths(m, 'train', get))?.length, m.sources?.train.count);
  await writeFile(join(out, 'train.sources.json'), (await readFile(join(out, 'train.sources.json'), 'utf8')).replace('000', '001'));
  await assert.rejects(readSourcePaths(m, 'train', get), { code: 'SOURCES_CORRUPT' });
  assert.equal(await readSourcePaths({}, 'train', get), undefined, 'no sources: not an image-folder dataset');
});

test('a JPEG or PNG cut anywhere is IMAGE_TRUNCATED, whatever libvips calls it', async () => {
  const raw = Buffer.alloc(40 * 40 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 37) % 251;
  for (const fmt of ['jpeg', 'png'] as const) {
    const img = sharp(raw, { raw: { width: 40, height: 40, channels: 3 } });
    const full = await (fmt === 'jpeg' ? img.jpeg() : img.png()).toBuffer();
    // A PNG cut only inside its 12-byte IEND chunk still holds every pixel and decodes.
    for (let cut = 20; cut < full.length - 12; cut += 11) {
      await assert.rejects(
        decodeImageBytes(full.subarray(0, cut), { height: 8, width: 8, channels: 1 }, `cut-${cut}.${fmt}`),
        { code: 'IMAGE_TRUNCATED' },
        `${fmt} cut at ${cut}`,
      );
    }
  }
});

test('each image is decoded once: the write pass reads no image file, and the dataset is the one a normal import gives', async () => {
  const root = await tree('once', 24, 8, false);
  const copy = join(dir, 'once-copy');
  await cp(root, copy, { recursive: true });
  const opts = { name: 'once', height: 24, width: 24, channels: 3 as const, folds: 2, seed: 3 };
  const plan = await checkImageFolder(await listImageFolder(root), opts);
  // Every image file is gone before the write pass: it can only write what the check pass decoded.
  await rm(root, { recursive: true, force: true });
  const out = join(dir, 'once-out');
  const m = await writeImageFolder(plan, directorySink(out));
  const reference = await writeImageFolder(await checkImageFolder(await listImageFolder(copy), opts), directorySink(join(dir, 'once-ref')));
  assert.deepEqual(m, reference, 'the same version, shards and hashes as an import that could read the files');
  const get = (n: string): Promise<Uint8Array> => readFile(join(out, n));
  const testPaths = (await readSourcePaths(m, 'test', get)) as string[];
  const shard = decodeShard(await get('test.cvcs'), 'test.cvcs');
  for (let r = 0; r < shard.set.count; r++) {
    const p = testPaths[shard.indices[r] as number] as string;
    assert.deepEqual(
      shard.set.images.subarray(r * 24 * 24 * 3, (r + 1) * 24 * 24 * 3),
      await decodeImage(join(copy, p), { height: 24, width: 24, channels: 3 }),
      p,
    );
  }
});

/** This process's open file descriptors (Linux), to see that no scratch file stays open. */
async function openFds(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

test(
  'the decoded pixels live in a scratch file that is gone after a write, a close or a failed check',
  { skip: !existsSync('/proc/self/fd') && 'no /proc/self/fd' },
  async () => {
    const root = await tree('scratch', 20, 6, true);
    const l = await listImageFolder(root);
    const scratchDir = await mkdtemp(join(dir, 'scratch-'));
    const opts = { name: 'scratch', height: 16, width: 16, channels: 1 as const, folds: 2, seed: 1, scratchDir };
    const fds = await openFds();
    // Bad files: the check fails naming them, and neither its scratch file nor its handle is left.
    await assert.rejects(checkImageFolder(l, opts), (err: unknown) => err instanceof InvalidImagesError && err.message.includes('Bag/corrupt.jpg'));
    assert.equal(await openFds(), fds, 'the failed check closed its scratch file');
    assert.deepEqual(await readdir(scratchDir), []);
    // A plan holds one scratch file, unlinked while open (a crash leaves nothing); close() releases it.
    const plan = await checkImageFolder(l, { ...opts, skipInvalid: true });
    assert.equal(plan.spool.count, plan.train.length + plan.test.length);
    assert.equal(plan.spool.recordBytes, 16 * 16);
    assert.deepEqual(await readdir(scratchDir), []);
    assert.equal(await openFds(), fds + 1);
    await plan.close();
    await plan.close();
    assert.equal(await openFds(), fds);
    await assert.rejects(writeImageFolder(plan, directorySink(join(dir, 'scratch-closed'))), RangeError, 'a closed plan cannot be written');
    // Written: closed too.
    const written = await checkImageFolder(l, { ...opts, skipInvalid: true });
    await writeImageFolder(written, directorySink(join(dir, 'scratch-out')));
    assert.equal(await openFds(), fds);
  },
);

test('past the scratch cap the write pass decodes again (checked against the digest): the same dataset, and a file changed meanwhile is IMAGE_CHANGED', async () => {
  const root = await tree('capped', 16, 6, false);
  const opts = { name: 'capped', height: 16, width: 16, channels: 3 as const, folds: 2, seed: 5 };
  const per = 16 * 16 * 3;
  const reference = await writeImageFolder(await checkImageFolder(await listImageFolder(root), opts), directorySink(join(dir, 'capped-ref')));
  // Room for 3 images: the first 3 come from the scratch file, the others are decoded again.
  const plan = await checkImageFolder(await listImageFolder(root), { ...opts, maxScratchBytes: 3 * per + per - 1 });
  assert.equal(plan.spool.count, 3);
  assert.equal(plan.digests.size, plan.train.length + plan.test.length - 3);
  assert.deepEqual(await writeImageFolder(plan, directorySink(join(dir, 'capped-out'))), reference, 'the same version, shards and hashes');
  // No scratch at all: every image is decoded twice, and one rewritten between the passes is refused by name.
  const none = await checkImageFolder(await listImageFolder(root), { ...opts, maxScratchBytes: 0 });
  assert.equal(none.spool.count, 0);
  const victim = [...none.digests.keys()].sort()[0] as string;
  await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 250, g: 10, b: 10 } } })
    .png()
    .toFile(join(root, victim));
  await assert.rejects(
    writeImageFolder(none, directorySink(join(dir, 'capped-changed'))),
    (err: unknown) => err instanceof DataError && err.code === 'IMAGE_CHANGED' && err.message.includes(victim),
  );
  // A bad cap is a clear configuration error.
  await assert.rejects(checkImageFolder(await listImageFolder(root), { ...opts, maxScratchBytes: -1 }), /maxScratchBytes.*whole number of bytes/);
  assert.throws(() => scratchCap({}, 'lots'), /CVC_IMPORT_SCRATCH_BYTES.*got lots/);
  assert.equal(scratchCap({}, undefined), DEFAULT_SCRATCH_BYTES);
  assert.equal(scratchCap({}, '1000'), 1000);
});

test('an image import whose shards would pass maxShardBytes is refused naming the shard, before decoding unless skipInvalid', async () => {
  const root = await tree('big-shards', 16, 6, false);
  const opts = { name: 'big', height: 16, width: 16, channels: 3 as const, folds: 2, seed: 1 };
  // 8 records of 16x16x3 (773 bytes each) per fold: about 6.3 kB a shard.
  let decoded = 0;
  const counting = { onProgress: () => void decoded++ };
  await assert.rejects(
    checkImageFolder(await listImageFolder(root), { ...opts, maxShardBytes: 5000 }, counting),
    (e: unknown) => e instanceof Error && e.name === 'ConfigError' && /fold-0\.cvcs would be .* more than the 5000 bytes/.test(e.message),
  );
  assert.equal(decoded, 0, 'refused before any image was decoded');
  // With skipInvalid the sizes are known only after the check pass: refused then.
  await assert.rejects(checkImageFolder(await listImageFolder(root), { ...opts, maxShardBytes: 5000, skipInvalid: true }, counting), /fold-0\.cvcs would be/);
  assert.ok(decoded > 0);
  const plan = await checkImageFolder(await listImageFolder(root), { ...opts, maxShardBytes: 10_000 });
  await plan.close();
});

test('an image reached twice through symbolic links is listed once (the path without a link), the other paths are problems', async () => {
  const root = await tree('dups', 12, 0, false);
  const tshirt = (await readdir(join(root, 'Shirt'))).sort();
  const first = tshirt[0] as string;
  await symlink(first, join(root, 'Shirt', 'again.png'));
  // A whole class linked into another: every Trouser image would also be a "Sandal".
  await symlink('../Trouser', join(root, 'Sandal', 'more'));
  await mkdir(join(root, '.pool'));
  await writeFile(join(root, '.pool', 'p.png'), await readFile(join(root, 'Shirt', first)));
  await symlink('../.pool/p.png', join(root, 'Coat', 'linked.png'));
  const trousers = (await readdir(join(root, 'Trouser'))).sort();
  const l = await listImageFolder(root);
  const paths = l.entries.map((e) => e.path);
  assert.equal(new Set(paths).size, paths.length);
  assert.ok(paths.includes(`Shirt/${first}`) && !paths.includes('Shirt/again.png'));
  for (const t of trousers) {
    assert.ok(paths.includes(`Trouser/${t}`), `Trouser/${t} keeps its own label`);
    assert.ok(!paths.includes(`Sandal/more/${t}`));
  }
  assert.ok(paths.includes('Coat/linked.png'), 'a file reached only through a link (from a hidden pool) is kept');
  const dup = Object.fromEntries(l.problems.map((p) => [p.path, p]));
  assert.equal(dup['Shirt/again.png']?.code, 'IMAGE_FOLDER_INVALID');
  assert.match(dup['Shirt/again.png']?.reason ?? '', new RegExp(`same file as Shirt/${first.replace('.', '\\.')}`));
  for (const t of trousers) assert.ok(dup[`Sandal/more/${t}`], `Sandal/more/${t} is a problem`);
  assert.equal(l.problems.length, 1 + trousers.length);
});

test('a folder whose every image is invalid, skipped with skipInvalid, is IMAGE_FOLDER_EMPTY saying how many were skipped', async () => {
  const root = join(dir, 'all-bad');
  await mkdir(join(root, 'a'), { recursive: true });
  await mkdir(join(root, 'b'), { recursive: true });
  await writeFile(join(root, 'a', '1.png'), 'not a png');
  await writeFile(join(root, 'b', '2.jpg'), new Uint8Array(0));
  for (const size of [{}, { height: 8, width: 8, channels: 1 as const }]) {
    await assert.rejects(
      checkImageFolder(await listImageFolder(root), { name: 'bad', folds: 2, seed: 1, skipInvalid: true, ...size }),
      (e: unknown) => e instanceof DataError && e.code === 'IMAGE_FOLDER_EMPTY' && /no (valid|readable) image/.test(e.message),
      JSON.stringify(size),
    );
  }
});

test('a named pipe (or another non-regular file) with an image name is a problem of the listing, never read (reading one waits forever)', async () => {
  const root = await tree('fifo', 4, 0, false);
  const { execFileSync } = await import('node:child_process');
  const cls = (await readdir(root)).sort()[0] as string;
  execFileSync('mkfifo', [join(root, cls, 'pipe.png')]);
  await symlink('pipe.png', join(root, cls, 'to-pipe.jpg'));
  const l = await listImageFolder(root);
  assert.ok(!l.entries.some((e) => e.path.includes('pipe')), 'the pipe is not an entry');
  const problems = Object.fromEntries(l.problems.map((p) => [p.path, p]));
  for (const p of [`${cls}/pipe.png`, `${cls}/to-pipe.jpg`]) {
    assert.equal(problems[p]?.code, 'NOT_AN_IMAGE', p);
    assert.match(problems[p]?.reason ?? '', /not a regular file/);
  }
});

test('a subfolder that cannot be read (EACCES, e.g. lost+found) is a problem of the listing naming it, not a raw error', async () => {
  const { chmod } = await import('node:fs/promises');
  const { execFileSync } = await import('node:child_process');
  const root = await mkdtemp(join(tmpdir(), 'cvc-unreadable-'));
  try {
    await chmod(root, 0o755);
    for (const c of ['a', 'b']) {
      await mkdir(join(root, c));
      for (const i of [1, 2])
        await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 40 * i, g: 0, b: 0 } } })
          .png()
          .toFile(join(root, c, `${i}.png`));
    }
    await mkdir(join(root, 'a', 'private'));
    await chmod(join(root, 'a', 'private'), 0o000);
    // Root reads any folder: list as an unprivileged user where the test runs as root.
    const script = `import('${new URL('./index.js', import.meta.url).href}').then((m) => m.listImageFolder(${JSON.stringify(root)})).then(
      (l) => console.log(JSON.stringify({ entries: l.entries.map((e) => e.path), problems: l.problems })),
      (e) => console.log(JSON.stringify({ error: { name: e.name, code: e.code, message: e.message } })))`;
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { ...asUser, encoding: 'utf8' })) as {
      entries?: string[];
      problems?: { path: string; code: string; reason: string }[];
      error?: unknown;
    };
    assert.equal(out.error, undefined, JSON.stringify(out.error));
    assert.deepEqual(out.entries, ['a/1.png', 'a/2.png', 'b/1.png', 'b/2.png']);
    assert.equal(out.problems?.length, 1);
    assert.equal(out.problems?.[0]?.path, 'a/private');
    assert.equal(out.problems?.[0]?.code, 'FILE_UNREADABLE');
    assert.match(out.problems?.[0]?.reason ?? '', /EACCES/);
  } finally {
    await chmod(join(root, 'a', 'private'), 0o755).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  }
});

test('an image import with a concurrency below 1 is a ConfigError, not a folder without images', async () => {
  const root = await tree('concurrency', 4, 0, false);
  await assert.rejects(
    checkImageFolder(await listImageFolder(root), { name: 'c', height: 8, width: 8, channels: 1, folds: 2, seed: 1, concurrency: 0 }),
    (e: unknown) => e instanceof Error && e.name === 'ConfigError' && /concurrency/.test(e.message),
  );
});

test("the test fraction never takes a class's only image; a folder where it must is a ConfigError naming test-fraction", async () => {
  const root = await tree('rare', 12, 0, false);
  const some = (await readdir(join(root, 'Trouser')))[0] as string;
  // 'Aardvark' sorts first: the held-out share's first extra image was its only one.
  await mkdir(join(root, 'Aardvark'));
  await cp(join(root, 'Trouser', some), join(root, 'Aardvark', `only.${some.split('.').pop()}`));
  const l = await listImageFolder(root);
  const plan = await checkImageFolder(l, { name: 'rare', folds: 2, seed: 1, testFraction: 0.2 });
  assert.equal(plan.test.length, 3);
  // The rule changed this folder's split, so its version is not the one imports before the rule gave it.
  const legacyVersion = (p: { sourceSha256: string }): string =>
    createHash('sha256').update(`${p.sourceSha256}:k=2:scheme=stratified:seed=1:test=fraction=0.2`).digest('hex').slice(0, 16);
  assert.notEqual(plan.version, legacyVersion(plan));
  for (const [label, name] of l.classNames.entries())
    if (l.entries.some((e) => e.label === label))
      assert.ok(
        plan.train.some((e) => e.label === label),
        `class ${name} keeps a training image`,
      );
  await plan.close();
  // A folder whose split the rule leaves alone keeps the version it always had.
  const plain = await checkImageFolder(await listImageFolder(await tree('plain', 60, 0, false)), { name: 'plain', folds: 2, seed: 1, testFraction: 0.2 });
  assert.equal(plain.version, legacyVersion(plain));
  await plain.close();
  // Every class holds one image: nothing can be held out.
  const singles = join(dir, 'singles');
  for (const c of ['A', 'B', 'C', 'D']) {
    await mkdir(join(singles, c), { recursive: true });
    await cp(join(root, 'Trouser', some), join(singles, c, `x.${some.split('.').pop()}`));
  }
  await assert.rejects(
    checkImageFolder(await listImageFolder(singles), { name: 'singles', folds: 2, seed: 1, testFraction: 0.2 }),
    (e: unknown) =>
      e instanceof Error && e.name === 'ConfigError' && /test-fraction.*only 0 can go while each of the 4 classes keeps a training image/.test(e.message),
  );
});

test('an image reached through two hard links (same device and inode) is listed once, the other path is a problem', async () => {
  const root = await tree('hardlinks', 12, 0, false);
  const first = (await readdir(join(root, 'Shirt'))).sort()[0] as string;
  // One file in two classes, and a test/ split made with `cp -al` style links.
  await link(join(root, 'Shirt', first), join(root, 'Coat', `hard-${first}`));
  const trouser = (await readdir(join(root, 'Trouser'))).sort()[0] as string;
  await mkdir(join(root, 'test', 'Trouser'), { recursive: true });
  await link(join(root, 'Trouser', trouser), join(root, 'test', 'Trouser', trouser));
  const l = await listImageFolder(root);
  const paths = l.entries.map((e) => e.path);
  // Paths sort train-first, then by code units: the first path found is kept.
  assert.ok(paths.includes(`Coat/hard-${first}`) && !paths.includes(`Shirt/${first}`));
  assert.ok(paths.includes(`Trouser/${trouser}`) && !paths.includes(`test/Trouser/${trouser}`), 'the training path is kept');
  assert.deepEqual(
    l.problems.map((p) => [p.path, p.code, p.reason]),
    [
      [`Shirt/${first}`, 'IMAGE_FOLDER_INVALID', `is the same file as Coat/hard-${first} (a hard link to it): each image may be in the folder once`],
      [`test/Trouser/${trouser}`, 'IMAGE_FOLDER_INVALID', `is the same file as Trouser/${trouser} (a hard link to it): each image may be in the folder once`],
    ],
  );
});

test("without --size (--channels) every image must have the first one's size (kind): a mix is refused naming the field, the sizes and an image of each", async () => {
  const root = join(dir, 'mixed-sizes');
  // 20 real images at 40x40 RGB, then the first image (in path order) replaced by a 300x200 one, and one greyscale file.
  await writeImageTree(root, ds.test, 20, { height: 40, width: 40, channels: 3, classNames: classes });
  const l0 = await listImageFolder(root);
  const firstPath = l0.entries[0]?.path as string;
  await sharp(join(root, firstPath))
    .resize(200, 300, { fit: 'fill' })
    .toFile(join(root, `${firstPath}.big.png`));
  await rm(join(root, firstPath));
  const l = await listImageFolder(root);
  const big = l.entries[0]?.path as string;
  assert.match(big, /\.big\.png$/, 'the 300x200 image comes first in path order');
  const opts = { name: 'mixed', folds: 2, seed: 1 };
  await assert.rejects(checkImageFolder(l, opts), (err: Error & { field?: string }) => {
    assert.equal(err.field, 'size');
    assert.match(
      err.message,
      new RegExp(
        `not all one size.*first one's \\(${big.replace(/[.]/g, '\\.')}, 300x200\\): 300x200 \\(1, e\\.g\\. .*\\), 40x40 \\(19, e\\.g\\. .*\\); give --size HxW`,
      ),
    );
    return true;
  });
  // Given a size, they are all resized to it.
  const sized = await checkImageFolder(l, { ...opts, height: 40, width: 40 });
  assert.equal(sized.train.length + sized.test.length, 20);
  await sized.close();

  // One greyscale image among colour ones: the kind is asked for.
  await rm(join(root, big));
  const grey = l.entries[5]?.path as string;
  await sharp(join(root, grey))
    .toColourspace('b-w')
    .png()
    .toFile(join(root, `${grey}.grey.png`));
  await rm(join(root, grey));
  await assert.rejects(checkImageFolder(await listImageFolder(root), opts), (err: Error & { field?: string }) => {
    assert.equal(err.field, 'channels');
    assert.match(
      err.message,
      /not all greyscale or all colour.*colour \(18, e\.g\. .*\), greyscale \(1, e\.g\. .*\.grey\.png\); give --channels 1 \(greyscale\) or 3 \(RGB\)/,
    );
    return true;
  });
  const kinds = await checkImageFolder(await listImageFolder(root), { ...opts, channels: 3 });
  assert.equal(kinds.train.length + kinds.test.length, 19);
  await kinds.close();
});
