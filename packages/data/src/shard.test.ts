import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  encodeShard,
  decodeShard,
  shardChunks,
  streamShardRecords,
  readShardStream,
  DataError,
  importDataset,
  directorySink,
  writeManifest,
  readManifestFile,
  readShardFile,
  parseManifest,
  type Dataset,
} from './index.js';
import { randomImageSet } from './testing.js';

const code = (c: string) => (err: unknown) => err instanceof DataError && err.code === c;

function chunked(bytes: Uint8Array, size: number): AsyncIterable<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
  return (async function* () {
    for (const p of parts) yield await Promise.resolve(p);
  })();
}

test('a shard round-trips images, labels and source indices', async () => {
  const set = randomImageSet(50, 8, 6, 2, 3);
  const indices = [49, 3, 7, 0, 22];
  const bytes = encodeShard(set, indices, { split: 'train', fold: 2 });
  const s = decodeShard(bytes, 's');
  assert.equal(s.header.count, 5);
  assert.deepEqual([...s.indices], indices);
  assert.deepEqual(s.header.meta, { split: 'train', fold: 2 });
  for (let r = 0; r < 5; r++) {
    const src = indices[r] as number;
    assert.deepEqual([...s.set.images.subarray(r * 96, (r + 1) * 96)], [...set.images.subarray(src * 96, (src + 1) * 96)]);
    assert.equal(s.set.labels[r], set.labels[src]);
  }
  // Streamed in odd-sized pieces, with small batches, the result is the same.
  const parts = [];
  for await (const p of streamShardRecords(chunked(bytes, 37), 's', 2)) parts.push(p);
  assert.deepEqual(
    parts.map((p) => p.set.count),
    [2, 2, 1],
  );
  const whole = await readShardStream(chunked(bytes, 1000), 's');
  assert.deepEqual(whole.set.images, s.set.images);
  assert.deepEqual([...whole.indices], indices);
  // The chunked writer produces the same bytes as the one-shot encoder.
  const joined = Buffer.concat([...shardChunks(set, indices, { split: 'train', fold: 2 }, indices, 2)]);
  assert.ok(joined.equals(bytes));
});

test('a corrupted, truncated or foreign shard is refused, streamed or not', async () => {
  const bytes = encodeShard(
    randomImageSet(20, 4, 4, 1),
    Array.from({ length: 20 }, (_, i) => i),
    {},
  );
  const flipped = bytes.slice();
  flipped[200] = (flipped[200] as number) ^ 0xff;
  assert.throws(
    () => decodeShard(flipped, 'f.cvcs'),
    (e: unknown) => code('SHARD_CHECKSUM')(e) && /f\.cvcs/.test((e as Error).message),
  );
  await assert.rejects(readShardStream(chunked(flipped, 64), 'f.cvcs'), code('SHARD_CHECKSUM'));
  // Streaming yields records before the end, then throws: nothing after the error is trusted.
  const seen: number[] = [];
  await assert.rejects(async () => {
    for await (const p of streamShardRecords(chunked(flipped, 64), 'f.cvcs', 4)) seen.push(p.set.count);
  }, code('SHARD_CHECKSUM'));

  const cut = bytes.subarray(0, bytes.length - 100);
  assert.throws(() => decodeShard(cut, 't.cvcs'), code('SHARD_TRUNCATED'));
  await assert.rejects(readShardStream(chunked(cut, 50), 't.cvcs'), code('SHARD_TRUNCATED'));
  await assert.rejects(readShardStream(chunked(bytes.subarray(0, 10), 50), 't.cvcs'), code('SHARD_TRUNCATED'));
  assert.throws(() => decodeShard(new Uint8Array([...bytes, 0]), 'x'), code('SHARD_CORRUPT'));

  const foreign = bytes.slice();
  foreign[0] = 0x58;
  assert.throws(() => decodeShard(foreign, 'x'), code('SHARD_BAD_MAGIC'));
  const future = bytes.slice();
  future[8] = 9;
  assert.throws(
    () => decodeShard(future, 'x'),
    (e: unknown) => code('SHARD_BAD_VERSION')(e) && /version 9/.test((e as Error).message),
  );
});

function tinyDataset(): Dataset {
  return {
    name: 'tiny',
    dir: '/nowhere',
    format: 'idx',
    numClasses: 10,
    classNames: [...'0123456789'],
    train: randomImageSet(100, 28, 28, 1, 5),
    test: randomImageSet(30, 28, 28, 1, 6),
  };
}

test('importing writes fold shards and a manifest; the same data gives the same version', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-import-'));
  try {
    const ds = tinyDataset();
    const m1 = await importDataset(ds, { folds: 5, scheme: 'stratified', seed: 1 }, directorySink(join(dir, 'a')));
    await writeManifest(join(dir, 'a'), m1);
    const m2 = await importDataset(ds, { folds: 5, scheme: 'stratified', seed: 1 }, directorySink(join(dir, 'b')));
    assert.deepEqual(m2, m1);
    assert.ok((await readFile(join(dir, 'a', 'fold-3.cvcs'))).equals(await readFile(join(dir, 'b', 'fold-3.cvcs'))));
    const m3 = await importDataset(ds, { folds: 5, scheme: 'seed', seed: 1 }, directorySink(join(dir, 'c')));
    assert.notEqual(m3.version, m1.version);
    const other = { ...ds, test: randomImageSet(30, 28, 28, 1, 7) };
    assert.notEqual((await importDataset(other, { folds: 5, scheme: 'stratified', seed: 1 }, directorySink(join(dir, 'd')))).sourceSha256, m1.sourceSha256);

    const manifest = await readManifestFile(join(dir, 'a'));
    assert.equal(manifest.shards.length, 6);
    const all = new Set<number>();
    for (const e of manifest.shards.filter((s) => s.split === 'train')) {
      const shard = await readShardFile(join(dir, 'a'), e);
      assert.equal(shard.set.count, 20);
      assert.deepEqual(e.classCounts, new Array(10).fill(2));
      for (const i of shard.indices) all.add(i);
    }
    assert.equal(all.size, 100, 'folds cover the training set exactly once');

    // A shard damaged on disk is caught against the manifest.
    const p = join(dir, 'a', 'fold-1.cvcs');
    const bytes = await readFile(p);
    bytes[bytes.length - 50] = (bytes[bytes.length - 50] as number) ^ 1;
    await writeFile(p, bytes);
    await assert.rejects(readShardFile(join(dir, 'a'), manifest.shards[1] as never), code('SHARD_CHECKSUM'));
    await writeFile(p, bytes.subarray(0, 1000));
    await assert.rejects(readShardFile(join(dir, 'a'), manifest.shards[1] as never), code('SHARD_TRUNCATED'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('--limit imports a stratified subset whose indices point into the full split', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-import-'));
  try {
    const ds = tinyDataset();
    const m = await importDataset(ds, { folds: 2, scheme: 'stratified', seed: 1, limit: 40 }, directorySink(dir));
    const counts = m.shards.map((s) => s.count);
    assert.deepEqual(counts, [20, 20, 30]);
    const s = await readShardFile(dir, m.shards[0] as never);
    for (let r = 0; r < s.set.count; r++) {
      const src = s.indices[r] as number;
      assert.deepEqual([...s.set.images.subarray(r * 784, r * 784 + 784)], [...ds.train.images.subarray(src * 784, src * 784 + 784)]);
    }
    await assert.rejects(importDataset(ds, { folds: 5, scheme: 'stratified', seed: 1, limit: 3 }, directorySink(dir)), /limit/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a manifest or shard header that is valid JSON but not an object, or a manifest shard entry with a bad field, is a DataError naming it', () => {
  for (const text of ['null', '42', '"x"', '[]']) {
    assert.throws(() => parseManifest(text, 'm.json'), code('MANIFEST_CORRUPT'), text);
  }
  const shard = { name: 'fold-0.cvcs', split: 'train', fold: 0, count: 2, bytes: 100, sha256: 'a'.repeat(64), classCounts: [1, 1] };
  const manifest = (s: object): string => JSON.stringify({ format: 'cvc-dataset', formatVersion: 1, shards: [shard, s] });
  assert.equal(parseManifest(manifest(shard), 'm.json').shards.length, 2);
  for (const [bad, field] of [
    [null, 'shards[1]'],
    [{ ...shard, bytes: '100' }, 'shards[1].bytes'],
    [{ ...shard, count: -1 }, 'shards[1].count'],
    [{ ...shard, sha256: 'nothex' }, 'shards[1].sha256'],
    [{ ...shard, name: '../../etc/passwd' }, 'shards[1].name'],
    [{ ...shard, split: 'val' }, 'shards[1].split'],
    [{ ...shard, fold: undefined }, 'shards[1].fold'],
  ] as const) {
    assert.throws(
      () => parseManifest(manifest(bad as object), 'm.json'),
      (e: unknown) => e instanceof DataError && e.code === 'MANIFEST_CORRUPT' && e.message.includes(field),
      field,
    );
  }
  // A shard header of JSON null: the header is parsed before the checksum, so this must not be a TypeError.
  const json = new TextEncoder().encode('null');
  const bytes = new Uint8Array(16 + json.length + 40);
  bytes.set(new TextEncoder().encode('CVCSHARD'));
  new DataView(bytes.buffer).setUint32(8, 1, true);
  new DataView(bytes.buffer).setUint32(12, json.length, true);
  bytes.set(json, 16);
  assert.throws(() => decodeShard(bytes, 'x.cvcs'), code('SHARD_CORRUPT'));
});

test('a stream that is not a shard is SHARD_BAD_MAGIC as soon as its first 16 bytes are in, whatever its bytes 12..15 say', async () => {
  // A gzip file, a PNG...: bytes 12..15 read as a header length of about 4 GB.
  const notShard = new Uint8Array(5000).fill(0xff);
  await assert.rejects(readShardStream(chunked(notShard, 1000), 'x.cvcs'), code('SHARD_BAD_MAGIC'));
  const wrongVersion = encodeShard(randomImageSet(2, 2, 2, 1), [0, 1], {});
  new DataView(wrongVersion.buffer).setUint32(8, 7, true);
  new DataView(wrongVersion.buffer).setUint32(12, 0xffffffff, true);
  await assert.rejects(readShardStream(chunked(wrongVersion, 10), 'v.cvcs'), code('SHARD_BAD_VERSION'));
});

test('concatenating image sets of different shapes (shards of a mixed dataset) is a DataError SHAPE_MISMATCH, not a plain Error', async () => {
  const { concatImages } = await import('./index.js');
  assert.throws(() => concatImages([randomImageSet(2, 4, 4, 1), randomImageSet(2, 4, 4, 3)]), code('SHAPE_MISMATCH'));
});

test('shardChunks sizes its chunks in bytes: big images give chunks of about 256 KiB, not 1024 records', () => {
  const set = randomImageSet(300, 32, 32, 3);
  const indices = Array.from({ length: 300 }, (_, i) => i);
  const chunks = [...shardChunks(set, indices, {})];
  const records = chunks.slice(1, -1);
  assert.ok(records.length > 1, `${records.length} record chunk(s)`);
  for (const c of records) assert.ok(c.length <= 1 << 18, `a chunk of ${c.length} bytes`);
  // A record bigger than the chunk size still goes whole, one per chunk.
  assert.deepEqual(
    [...shardChunks(set, [0, 1, 2], {}, [0, 1, 2], 100)].slice(1, -1).map((c) => c.length),
    [3077, 3077, 3077],
  );
  assert.ok(Buffer.concat(chunks).equals(encodeShard(set, indices, {})));
});

test('streamShardRecords copies each byte a bounded number of times (linear), and gives what decodeShard gives', async () => {
  const set = randomImageSet(64, 16, 16, 4);
  const indices = Array.from({ length: 64 }, (_, i) => 63 - i);
  const bytes = encodeShard(set, indices, { split: 'train' });
  const want = decodeShard(bytes, 's');
  // Count the bytes Uint8Array#set copies while the stream is read in 100-byte chunks, in one batch.
  const proto = Uint8Array.prototype as { set: Uint8Array['set'] };
  const own = Object.getOwnPropertyDescriptor(proto, 'set');
  const original = proto.set;
  let copied = 0;
  proto.set = function (this: Uint8Array, src: ArrayLike<number>, offset?: number) {
    copied += src.length;
    return original.call(this, src, offset);
  };
  const parts: { set: { images: Uint8Array; labels: Uint8Array }; indices: Uint32Array }[] = [];
  try {
    for await (const p of streamShardRecords(chunked(bytes, 100), 's', 64)) parts.push(p);
  } finally {
    if (own) Object.defineProperty(proto, 'set', own);
    else delete (proto as { set?: unknown }).set;
  }
  assert.ok(copied < 3 * bytes.length, `${copied} bytes copied for a ${bytes.length}-byte shard`);
  assert.equal(parts.length, 1);
  assert.deepEqual(parts[0]?.set.images, want.set.images);
  assert.deepEqual(parts[0]?.set.labels, want.set.labels);
  assert.deepEqual([...(parts[0]?.indices ?? [])], [...want.indices]);
});
