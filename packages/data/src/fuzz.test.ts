// Property tests of every reader of untrusted bytes: truncated, corrupted,
// oversized and out-of-range inputs must give a DataError that names the
// file, never another exception (TypeError, RangeError, an allocation of
// whatever size a corrupt header claims) and never a silently wrong result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { createRng, type Rng } from '@cvc/core';
import { DataError } from './errors.js';
import { parseIdx } from './idx.js';
import { parseCifarBatch } from './cifar.js';
import { decodeShard, encodeShard, streamShardRecords } from './shard.js';
import { readTar } from './tar.js';
import { parseManifest } from './manifest.js';
import { encodeCifarBatch, encodeIdx, encodeTar, randomImageSet } from './fixtures.js';

const ITERATIONS = 1500;
const int = (rng: Rng, n: number): number => Math.floor(rng.next() * n);

/** One random mutation of `good`: truncation, flipped bytes, a 32-bit field overwritten with an extreme, insertion, deletion, appended garbage, or pure noise. */
function mutate(good: Uint8Array, rng: Rng): { bytes: Uint8Array; what: string } {
  const b = Uint8Array.from(good);
  switch (int(rng, 7)) {
    case 0: {
      const n = int(rng, b.length);
      return { bytes: b.subarray(0, n), what: `truncated to ${n}` };
    }
    case 1: {
      const k = 1 + int(rng, 8);
      for (let i = 0; i < k; i++) {
        const j = int(rng, b.length);
        b[j] = (b[j] ?? 0) ^ (1 + int(rng, 255));
      }
      return { bytes: b, what: `${k} bytes flipped` };
    }
    case 2: {
      // Header fields are in the first 64 bytes: hit them with big, zero and negative values.
      const at = int(rng, Math.min(64, b.length - 4));
      const v = [0xffffffff, 0x7fffffff, 0, 1, 0x80000000, 0x10000][int(rng, 6)] ?? 0;
      new DataView(b.buffer, b.byteOffset).setUint32(at, v, rng.next() < 0.5);
      return { bytes: b, what: `u32 at ${at} = ${v}` };
    }
    case 3: {
      const at = int(rng, b.length);
      const extra = Uint8Array.from({ length: 1 + int(rng, 16) }, () => int(rng, 256));
      return { bytes: new Uint8Array([...b.subarray(0, at), ...extra, ...b.subarray(at)]), what: `${extra.length} bytes inserted at ${at}` };
    }
    case 4: {
      const at = int(rng, b.length);
      const n = 1 + int(rng, 16);
      return { bytes: new Uint8Array([...b.subarray(0, at), ...b.subarray(at + n)]), what: `${n} bytes deleted at ${at}` };
    }
    case 5:
      return { bytes: new Uint8Array([...b, ...Array.from({ length: 1 + int(rng, 64) }, () => int(rng, 256))]), what: 'garbage appended' };
    default:
      return { bytes: Uint8Array.from({ length: int(rng, 256) }, () => int(rng, 256)), what: 'noise' };
  }
}

/** Runs `parse` on many mutations; each must succeed or throw a DataError naming `file`. Returns how many were refused. */
function fuzz(name: string, good: Uint8Array, file: string, seed: number, parse: (b: Uint8Array) => void): number {
  const rng = createRng(seed);
  let refused = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const { bytes, what } = mutate(good, rng);
    try {
      parse(bytes);
    } catch (err) {
      if (!(err instanceof DataError)) assert.fail(`${name}, case ${i} (${what}): ${String((err as Error)?.stack ?? err)}`);
      assert.ok(
        err.message.startsWith(`${file}: `) && err.message.length > file.length + 4,
        `${name}: the message names the file and the problem: ${err.message}`,
      );
      refused++;
    }
  }
  return refused;
}

test('IDX reader (raw and gzipped): every malformed input is a DataError, valid ones parse consistently', () => {
  const set = randomImageSet(6, 7, 5, 1, 3);
  const raw = encodeIdx([6, 7, 5], set.images);
  let refused = fuzz('idx raw', raw, 'x-images-idx3-ubyte', 11, (b) => {
    const a = parseIdx(b, 'x-images-idx3-ubyte', 3);
    assert.equal(
      a.data.length,
      a.dims.reduce((p, d) => p * d, 1),
      'data length matches the dimensions',
    );
  });
  assert.ok(refused > ITERATIONS / 2, `most mutations are refused (${refused})`);
  refused = fuzz('idx gz', new Uint8Array(gzipSync(raw)), 'x-images-idx3-ubyte.gz', 12, (b) => void parseIdx(b, 'x-images-idx3-ubyte.gz', 3));
  assert.ok(refused > ITERATIONS / 2, `most gzip mutations are refused (${refused})`);
  // Out of range: a header that claims 4 billion images of a gigapixel must not allocate them.
  const huge = encodeIdx([6, 7, 5], set.images);
  new DataView(huge.buffer).setUint32(4, 0xffffffff, false);
  assert.throws(() => parseIdx(huge, 'huge', 3), DataError);
});

test('CIFAR-10 batch reader: every malformed input is a DataError', () => {
  const set = randomImageSet(4, 32, 32, 3, 5);
  const good = encodeCifarBatch(set);
  const refused = fuzz('cifar', good, 'data_batch_1.bin', 13, (b) => {
    const s = parseCifarBatch(b, 'data_batch_1.bin');
    assert.equal(s.images.length, s.count * 32 * 32 * 3);
    for (const l of s.labels) assert.ok(l >= 0 && l < 10, 'labels in range');
  });
  // A CIFAR batch has no header or checksum, so flipped pixels still parse; sizes and labels are what is checked.
  assert.ok(refused > ITERATIONS / 4, `refused ${refused}`);
});

test('shard reader, whole and streamed in random pieces: every corruption is refused, none reaches training', async () => {
  const set = randomImageSet(9, 6, 6, 1, 7);
  const good = encodeShard(
    set,
    Array.from({ length: 9 }, (_, i) => i),
    { dataset: 'fuzz', fold: 0 },
  );
  const refused = fuzz('shard', good, 'fold-0.shard', 14, (b) => {
    const s = decodeShard(b, 'fold-0.shard');
    // Anything that decodes is the original: the sha256 trailer makes corruption detectable.
    assert.deepEqual(s.set.images, set.images);
  });
  assert.ok(refused > ITERATIONS * 0.9, `refused ${refused}`);
  const rng = createRng(15);
  for (let i = 0; i < 300; i++) {
    const { bytes, what } = mutate(good, rng);
    async function* pieces(): AsyncGenerator<Uint8Array> {
      for (let at = 0; at < bytes.length;) {
        const n = 1 + int(rng, 40);
        yield await Promise.resolve(bytes.subarray(at, at + n));
        at += n;
      }
    }
    try {
      const out: Uint8Array[] = [];
      for await (const r of streamShardRecords(pieces(), 'fold-0.shard', 4)) out.push(r.set.images);
      assert.deepEqual(Buffer.concat(out), Buffer.from(set.images), `streamed case ${i} (${what}) decoded to the original`);
    } catch (err) {
      if (!(err instanceof DataError)) assert.fail(`streamed case ${i} (${what}): ${String((err as Error)?.stack ?? err)}`);
    }
  }
});

test('tar reader and dataset manifest parser: malformed input is a DataError', () => {
  const tar = encodeTar([
    { name: 'cifar-10-batches-bin/data_batch_1.bin', data: new Uint8Array(100).fill(3) },
    { name: 'cifar-10-batches-bin/readme.html', data: new Uint8Array(10).fill(1) },
  ]);
  fuzz('tar', tar, 'cifar.tar', 16, (b) => {
    for (const e of readTar(b, 'cifar.tar')) assert.ok(e.data.length <= b.length);
  });
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      format: 'cvc-dataset/1',
      dataset: 'fuzz',
      version: '0123456789abcdef',
      folds: 2,
      height: 28,
      width: 28,
      channels: 1,
      numClasses: 10,
      train: 10,
      test: 2,
      shards: [],
    }),
  );
  fuzz('manifest', manifest, 'manifest.json', 17, (b) => void parseManifest(new TextDecoder().decode(b), 'manifest.json'));
});
