// The worker's shard cache: a cache it cannot write does not fail the fold, and it stays under its size limit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '@cvc/core';
import { importDataset, type DatasetManifest } from '@cvc/data';
import { randomImageSet, tinyDataset } from '@cvc/data/testing';
import { createMemoryObjectStore, type MemoryObjectStore } from '@cvc/testkit';
import { ShardCache } from './shards.js';

let root: string;
let store: MemoryObjectStore;
let manifest: DatasetManifest;
const manifestKey = 'datasets/tiny/v1/manifest.json';

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'cvc-shards-test-'));
  store = createMemoryObjectStore();
  manifest = await importDataset(tinyDataset(), { folds: 3, scheme: 'stratified', seed: 1 }, async (name, chunks) => {
    const r = await store.put(`datasets/tiny/v1/${name}`, chunks);
    return { bytes: r.bytes, sha256: r.sha256 };
  });
  await store.put(manifestKey, new TextEncoder().encode(JSON.stringify(manifest)));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function memoryLogger(): Logger & { warnings: { msg: string; fields?: Record<string, unknown> }[] } {
  const warnings: { msg: string; fields?: Record<string, unknown> }[] = [];
  const none = (): void => {};
  return { warnings, debug: none, info: none, error: none, warn: (msg, fields) => void warnings.push({ msg, ...(fields ? { fields } : {}) }) };
}

test('a cache directory that cannot be written (here a file stands in its place) does not fail the fold: the verified shards are used from memory, and the failure is logged', async () => {
  const dir = join(root, 'not-a-dir');
  await writeFile(dir, 'in the way');
  const logger = memoryLogger();
  const data = await new ShardCache(store, dir, undefined, { logger }).foldData(manifestKey, 1);
  assert.equal(data.val.count + data.train.count, 12);
  assert.equal(data.test.count, 4);
  assert.equal(logger.warnings.length, manifest.shards.length, 'one warning per shard');
  assert.match(logger.warnings[0]?.msg ?? '', /caching a downloaded shard failed; using it from memory/);
  assert.equal(logger.warnings[0]?.fields?.['dir'], dir);
  assert.match(String(logger.warnings[0]?.fields?.['shard']), /^datasets\/tiny\/v1\//);
});

test('a cached shard whose sha256 no longer matches (bit rot) is downloaded again and rewritten, with a warning naming the shard', async () => {
  const dir = join(root, 'rotten');
  const cache = new ShardCache(store, dir, undefined, {});
  await cache.foldData(manifestKey, 0);
  const entry = manifest.shards[0];
  assert.ok(entry);
  const file = join(dir, `${entry.sha256}.cvcs`);
  await writeFile(file, 'rotten bytes');
  const logger = memoryLogger();
  let downloads = 0;
  const data = await new ShardCache(store, dir, () => void downloads++, { logger }).foldData(manifestKey, 0);
  assert.equal(data.test.count, 4);
  assert.equal(downloads, 1, 'only the rotten shard is downloaded again');
  assert.equal(logger.warnings.length, 1);
  assert.match(logger.warnings[0]?.msg ?? '', /a cached shard does not match its sha256; downloading it again/);
  assert.equal(logger.warnings[0]?.fields?.['shard'], `datasets/tiny/v1/${entry.name}`);
  assert.equal(logger.warnings[0]?.fields?.['file'], file);
  assert.equal((await stat(file)).size, entry.bytes, 'the cache entry is rewritten');
});

test('the cache is kept under maxBytes by removing the least recently used shards; a stale temp file of a dead write is removed', async () => {
  const dir = join(root, 'bounded');
  await mkdir(dir, { recursive: true });
  const stale = join(dir, `${'0'.repeat(64)}.cvcs.123.abcd.tmp`);
  await writeFile(stale, 'half a shard');
  const old = new Date(Date.now() - 2 * 3_600_000);
  await utimes(stale, old, old);
  const largest = Math.max(...manifest.shards.map((e) => e.bytes));
  const total = manifest.shards.reduce((n, e) => n + e.bytes, 0);
  const maxBytes = total - 1;
  const cache = new ShardCache(store, dir, undefined, { maxBytes });
  await cache.foldData(manifestKey, 0);
  const files = await readdir(dir);
  assert.ok(!files.includes(`${'0'.repeat(64)}.cvcs.123.abcd.tmp`), 'the stale temp file is gone');
  let kept = 0;
  for (const f of files) kept += (await stat(join(dir, f))).size;
  assert.ok(kept <= maxBytes, `${kept} bytes kept, limit ${maxBytes}`);
  assert.ok(kept >= largest, 'the shard just written is kept');
  // The last shard fetched (the manifest's last entry) is the most recently used, so it stays.
  assert.ok(files.includes(`${manifest.shards.at(-1)?.sha256}.cvcs`));
});

test('a split that spans several shards is used whole: two test shards and two shards of the validation fold are all read', async () => {
  // A second import of other images supplies a second test shard and a second fold-1 shard.
  const extra = await importDataset(
    { ...tinyDataset(), train: randomImageSet(12, 28, 28, 1, 3), test: randomImageSet(5, 28, 28, 1, 4) },
    { folds: 3, scheme: 'stratified', seed: 1 },
    async (name, chunks) => {
      const r = await store.put(`datasets/tiny/v2/b-${name}`, chunks);
      return { bytes: r.bytes, sha256: r.sha256 };
    },
  );
  for (const e of manifest.shards) await store.put(`datasets/tiny/v2/${e.name}`, await store.getBytes(`datasets/tiny/v1/${e.name}`));
  const more = extra.shards.filter((e) => e.split === 'test' || e.fold === 1).map((e) => ({ ...e, name: `b-${e.name}` }));
  const key = 'datasets/tiny/v2/manifest.json';
  await store.put(key, new TextEncoder().encode(JSON.stringify({ ...manifest, shards: [...manifest.shards, ...more] })));
  const count = (m: DatasetManifest, f: (e: DatasetManifest['shards'][number]) => boolean): number => m.shards.filter(f).reduce((n, e) => n + e.count, 0);
  const data = await new ShardCache(store, join(root, 'multi')).foldData(key, 1);
  assert.equal(data.test.count, 4 + 5);
  assert.equal(data.val.count, count(manifest, (e) => e.fold === 1) + count(extra, (e) => e.fold === 1));
  assert.equal(
    data.train.count,
    count(manifest, (e) => e.split === 'train' && e.fold !== 1),
  );
});
