import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseIdx, loadDataset, DataError, IDX_FILES, maybeGunzip, MAX_GUNZIPPED_BYTES } from './index.js';
import { encodeIdx, randomImageSet, writeIdxDataset } from './testing.js';

const code = (c: string) => (err: unknown) => err instanceof DataError && err.code === c;

test('parseIdx reads raw and gzipped unsigned-byte files', () => {
  const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => i);
  const raw = encodeIdx([2, 3, 4], data);
  for (const bytes of [raw, new Uint8Array(gzipSync(raw))]) {
    const r = parseIdx(bytes, 'x.idx', 3);
    assert.deepEqual(r.dims, [2, 3, 4]);
    assert.deepEqual([...r.data], [...data]);
  }
});

test('parseIdx names the file and the problem', () => {
  const good = encodeIdx([2, 2, 2], new Uint8Array(8));
  const badMagic = good.slice();
  badMagic[0] = 7;
  assert.throws(
    () => parseIdx(badMagic, 'm.idx', 3),
    (e: unknown) => code('IDX_BAD_MAGIC')(e) && /m\.idx/.test((e as Error).message),
  );
  const badType = good.slice();
  badType[2] = 0x0d;
  assert.throws(
    () => parseIdx(badType, 't.idx', 3),
    (e: unknown) => code('IDX_BAD_TYPE')(e) && /float/.test((e as Error).message),
  );
  assert.throws(() => parseIdx(good, 'd.idx', 1), code('IDX_BAD_DIMS'));
  assert.throws(
    () => parseIdx(good.subarray(0, good.length - 1), 'tr.idx', 3),
    (e: unknown) => code('IDX_TRUNCATED')(e) && /need 8 payload bytes, found 7/.test((e as Error).message),
  );
  assert.throws(() => parseIdx(new Uint8Array([...good, 1]), 'x.idx', 3), code('IDX_TRAILING'));
  assert.throws(() => parseIdx(new Uint8Array(gzipSync(good)).subarray(0, 10), 'g.gz', 3), code('GZIP_CORRUPT'));
  assert.throws(() => parseIdx(new Uint8Array(2), 's.idx', 3), code('IDX_TRUNCATED'));
});

test('a gzipped file that inflates past the limit (a gzip bomb) is GZIP_TOO_LARGE naming the sizes, not "corrupt"', () => {
  const bomb = new Uint8Array(gzipSync(new Uint8Array(1 << 20)));
  assert.ok(bomb.length < 2048, `${bomb.length} gzipped bytes`);
  assert.throws(
    () => maybeGunzip(bomb, 'bomb.gz', 64 * 1024),
    (e: unknown) =>
      code('GZIP_TOO_LARGE')(e) &&
      (e as Error).message ===
        `bomb.gz: ${bomb.length} gzipped bytes inflate to more than 65536 bytes, the most cvc reads from one file: split the dataset, or import it as an image folder`,
  );
  assert.equal(maybeGunzip(bomb, 'ok.gz', 1 << 20).length, 1 << 20);
  assert.equal(MAX_GUNZIPPED_BYTES, 2 ** 31 - 1);
});

test('loadDataset validates counts and label ranges of an IDX directory', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-idx-'));
  try {
    const train = randomImageSet(30, 28, 28, 1, 1);
    const test = randomImageSet(10, 28, 28, 1, 2);
    await writeIdxDataset(dir, train, test, false);
    const ds = await loadDataset(dir, { cacheDir: dir });
    assert.equal(ds.format, 'idx');
    assert.equal(ds.train.count, 30);
    assert.equal(ds.test.count, 10);
    assert.deepEqual([...ds.train.images.subarray(0, 784)], [...train.images.subarray(0, 784)]);

    await writeFile(join(dir, IDX_FILES.testLabels), encodeIdx([9], new Uint8Array(9)));
    await assert.rejects(
      loadDataset(dir, { cacheDir: dir }),
      (e: unknown) => code('IDX_COUNT_MISMATCH')(e) && /9 labels but .* 10 images/.test((e as Error).message),
    );

    const labels = new Uint8Array(10);
    labels[4] = 12;
    await writeFile(join(dir, IDX_FILES.testLabels), encodeIdx([10], labels));
    await assert.rejects(loadDataset(dir, { cacheDir: dir }), (e: unknown) => code('IDX_BAD_LABEL')(e) && /label 12 at index 4/.test((e as Error).message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an unknown name or an empty directory gets an error that says what to do', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-idx-'));
  try {
    await assert.rejects(loadDataset('no-such-dataset', { cacheDir: dir }), code('DATASET_UNKNOWN'));
    await assert.rejects(loadDataset(dir, { cacheDir: dir }), code('DATASET_UNRECOGNISED'));
    await assert.rejects(
      loadDataset('mnist', { cacheDir: dir, dataDirs: [] }),
      (e: unknown) =>
        code('DATASET_NOT_FOUND')(e) && /cvc dataset download mnist/.test((e as Error).message) && /train-images-idx3-ubyte\.gz/.test((e as Error).message),
    );
    // A known name found in a data directory.
    await writeIdxDataset(join(dir, 'mnist'), randomImageSet(12, 28, 28, 1), randomImageSet(4, 28, 28, 1));
    const ds = await loadDataset('mnist', { cacheDir: join(dir, 'nowhere'), dataDirs: [dir] });
    assert.equal(ds.name, 'mnist');
    assert.equal(ds.classNames.length, 10);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
