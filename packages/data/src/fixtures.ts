import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createRng } from '@cvc/core';
import type { ImageSet } from './image-set.js';
import type { Dataset } from './load.js';
import { IDX_FILES, CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH } from './registry.js';

/**
 * Generators of small but real dataset files, for tests and benchmarks:
 * the same byte formats the canonical downloads use.
 */

/** A tiny 28x28x1 IDX-style dataset named `tiny` (12 training and 4 test images of {@link randomImageSet}, classes c0..c9): the worker tests' import. */
export function tinyDataset(): Dataset {
  return {
    name: 'tiny',
    dir: '',
    format: 'idx',
    numClasses: 10,
    classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
    train: randomImageSet(12, 28, 28, 1, 1),
    test: randomImageSet(4, 28, 28, 1, 2),
  };
}

/** A random image set with labels cycling over `numClasses` (seeded). */
export function randomImageSet(count: number, height: number, width: number, channels: number, seed = 1, numClasses = 10): ImageSet {
  const rng = createRng(seed);
  const images = new Uint8Array(count * height * width * channels);
  // Blobs rather than noise, so autoencoders have something to learn.
  for (let i = 0; i < count; i++) {
    const cy = rng.next() * height;
    const cx = rng.next() * width;
    const r = 2 + rng.next() * (height / 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const v = Math.max(0, 1 - Math.hypot(y - cy, x - cx) / r) * 255;
        for (let c = 0; c < channels; c++) images[((i * height + y) * width + x) * channels + c] = Math.round(v * (0.5 + 0.5 * ((c + i) % 2)));
      }
    }
  }
  const labels = Uint8Array.from({ length: count }, (_, i) => i % numClasses);
  return { images, labels, count, height, width, channels };
}

/** Encodes an unsigned-byte IDX file. */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out[2] = 0x08;
  out[3] = dims.length;
  const dv = new DataView(out.buffer);
  dims.forEach((d, i) => dv.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** Writes train/test IDX files (gzipped when `gzip`) into `dir`. */
export async function writeIdxDataset(dir: string, train: ImageSet, test: ImageSet, gzip = true): Promise<void> {
  await mkdir(dir, { recursive: true });
  const put = async (base: string, bytes: Uint8Array): Promise<void> => {
    await writeFile(join(dir, gzip ? `${base}.gz` : base), gzip ? gzipSync(bytes) : bytes);
  };
  await put(IDX_FILES.trainImages, encodeIdx([train.count, train.height, train.width], train.images));
  await put(IDX_FILES.trainLabels, encodeIdx([train.count], train.labels));
  await put(IDX_FILES.testImages, encodeIdx([test.count, test.height, test.width], test.images));
  await put(IDX_FILES.testLabels, encodeIdx([test.count], test.labels));
}

/** Encodes HWC 32x32x3 images as a CIFAR-10 binary batch (label byte + CHW planes). */
export function encodeCifarBatch(set: ImageSet): Uint8Array {
  const out = new Uint8Array(set.count * 3073);
  for (let r = 0; r < set.count; r++) {
    out[r * 3073] = set.labels[r] as number;
    for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) out[r * 3073 + 1 + c * 1024 + p] = set.images[r * 3072 + p * 3 + c] as number;
  }
  return out;
}

/** Writes five training batches of `perBatch` images and a test batch into `dir`. */
export async function writeCifarDataset(dir: string, perBatch: number, testCount: number, seed = 1): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let b = 0; b < 5; b++) {
    await writeFile(join(dir, CIFAR_TRAIN_BATCHES[b] as string), encodeCifarBatch(randomImageSet(perBatch, 32, 32, 3, seed + b)));
  }
  await writeFile(join(dir, CIFAR_TEST_BATCH), encodeCifarBatch(randomImageSet(testCount, 32, 32, 3, seed + 99)));
}

/** A minimal ustar archive of regular files (for testing the CIFAR-10 archive path). */
export function encodeTar(files: readonly { name: string; data: Uint8Array }[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  const enc = new TextEncoder();
  for (const f of files) {
    const h = new Uint8Array(512);
    h.set(enc.encode(f.name).subarray(0, 100), 0);
    h.set(enc.encode('0000644\0'), 100);
    h.set(enc.encode('0000000\0'), 108);
    h.set(enc.encode('0000000\0'), 116);
    h.set(enc.encode(f.data.length.toString(8).padStart(11, '0') + '\0'), 124);
    h.set(enc.encode('00000000000\0'), 136);
    h[156] = '0'.charCodeAt(0);
    h.set(enc.encode('ustar\0' + '00'), 257);
    h.fill(0x20, 148, 156);
    const sum = h.reduce((a, b) => a + b, 0);
    h.set(enc.encode(sum.toString(8).padStart(6, '0') + '\0 '), 148);
    blocks.push(h, f.data, new Uint8Array((512 - (f.data.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}
