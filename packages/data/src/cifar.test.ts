import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCifarBatch, loadDataset, DataError } from './index.js';
import { encodeCifarBatch, randomImageSet, writeCifarDataset } from './testing.js';

test('CIFAR-10 records are converted from CHW to HWC', () => {
  const rec = new Uint8Array(3073);
  rec[0] = 7;
  // pixel (row 0, col 1): R=10, G=20, B=30
  rec[1 + 1] = 10;
  rec[1 + 1024 + 1] = 20;
  rec[1 + 2048 + 1] = 30;
  const set = parseCifarBatch(rec, 'b.bin');
  assert.equal(set.count, 1);
  assert.equal(set.labels[0], 7);
  assert.deepEqual([...set.images.subarray(3, 6)], [10, 20, 30]);
  const again = parseCifarBatch(encodeCifarBatch(set), 'b.bin');
  assert.deepEqual(again.images, set.images);
});

test('a truncated batch or a bad label is refused with the file named', () => {
  const bytes = encodeCifarBatch(randomImageSet(3, 32, 32, 3));
  assert.throws(
    () => parseCifarBatch(bytes.subarray(0, bytes.length - 5), 'data_batch_1.bin'),
    (e: unknown) => e instanceof DataError && e.code === 'CIFAR_TRUNCATED' && /data_batch_1\.bin/.test(e.message),
  );
  const bad = bytes.slice();
  bad[3073] = 10;
  assert.throws(
    () => parseCifarBatch(bad, 'x.bin'),
    (e: unknown) => e instanceof DataError && e.code === 'CIFAR_BAD_LABEL' && /record 1 has label 10/.test(e.message),
  );
  assert.throws(
    () => parseCifarBatch(new Uint8Array(0), 'x.bin'),
    (e: unknown) => e instanceof DataError && e.code === 'CIFAR_EMPTY',
  );
});

test('a CIFAR-10 directory loads with its five official batches', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-cifar-'));
  try {
    await writeCifarDataset(join(dir, 'cifar-10-batches-bin'), 6, 4);
    const ds = await loadDataset(dir, { cacheDir: dir });
    assert.equal(ds.format, 'cifar10');
    assert.equal(ds.trainBatches?.length, 5);
    assert.equal(ds.train.count, 30);
    assert.equal(ds.test.count, 4);
    assert.equal(ds.train.channels, 3);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
