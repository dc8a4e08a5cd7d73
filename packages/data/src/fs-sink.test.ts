import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError, directorySink, importDataset, readManifestFile, readShardFile, type Dataset, type ShardSink, writeManifest } from './index.js';
import { ConfigError } from '@cvc/core';
import { randomImageSet } from './testing.js';

const tiny: Dataset = {
  name: 'tiny',
  dir: '/nowhere',
  format: 'idx',
  numClasses: 10,
  classNames: [...'0123456789'],
  train: randomImageSet(40, 4, 4, 1, 5),
  test: randomImageSet(10, 4, 4, 1, 6),
};

test('a re-import into the same directory that stops part way leaves no manifest naming shards it replaced', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-sink-'));
  try {
    await writeManifest(dir, await importDataset(tiny, { folds: 4, scheme: 'stratified', seed: 1 }, directorySink(dir)));
    const old = await readManifestFile(dir);
    for (const e of old.shards) await readShardFile(dir, e);

    // Another seed: other folds. The import stops after its second shard (Ctrl-C, a full disk).
    const sink = directorySink(dir);
    let written = 0;
    const stopping: ShardSink = async (name, chunks) => {
      if (written === 2) throw new Error('stopped');
      written++;
      return sink(name, chunks);
    };
    await assert.rejects(importDataset(tiny, { folds: 4, scheme: 'stratified', seed: 2 }, stopping), /stopped/);
    await assert.rejects(
      readManifestFile(dir),
      (e: unknown) => e instanceof DataError && e.code === 'MANIFEST_MISSING',
      'the old manifest no longer describes the directory, so it is gone',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an import whose shards would be too big for a worker to read is refused before anything is written', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-sink-'));
  try {
    // 250 images of 4096x4096 RGB (50 MB each): folds of 50 would be 2.5 GB each. The pixels are never read before the check.
    const labels = Uint8Array.from({ length: 250 }, (_, i) => i % 10);
    const huge = { images: new Uint8Array(0), labels, count: 250, height: 4096, width: 4096, channels: 3 };
    const ds: Dataset = { ...tiny, train: huge, test: { ...huge, count: 10, labels: labels.subarray(0, 10) } };
    let calls = 0;
    const counting: ShardSink = async (name, chunks) => {
      calls++;
      return directorySink(dir)(name, chunks);
    };
    await assert.rejects(
      importDataset(ds, { folds: 5, scheme: 'stratified', seed: 1 }, counting),
      (e: unknown) => e instanceof ConfigError && /fold-0\.cvcs would be 2\.3 GiB/.test(e.message) && /--folds/.test(e.message),
    );
    assert.equal(calls, 0, 'no shard was written');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a manifest or shard that exists but cannot be read says why (the errno code), not just "cannot be read"', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-sink-'));
  try {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(dir, 'manifest.json'));
    await mkdir(join(dir, 'fold-0.cvcs'));
    await assert.rejects(readManifestFile(dir), (e: unknown) => e instanceof DataError && e.code === 'MANIFEST_MISSING' && /EISDIR/.test(e.message));
    await assert.rejects(
      readShardFile(dir, { name: 'fold-0.cvcs', bytes: 1, sha256: '0'.repeat(64) }),
      (e: unknown) => e instanceof DataError && e.code === 'SHARD_MISSING' && /EISDIR/.test(e.message),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
