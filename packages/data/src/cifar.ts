import { readFile } from 'node:fs/promises';
import { DataError } from './errors.js';
import type { ImageSet } from './image-set.js';

/** Bytes of one CIFAR-10 binary record: a label byte then 3x32x32 CHW pixels. */
export const CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32;

/**
 * Parses a CIFAR-10 binary batch (data_batch_N.bin, test_batch.bin) into HWC
 * images. Checks the record size and that every label is below `numClasses`.
 */
export function parseCifarBatch(bytes: Uint8Array, file: string, numClasses = 10): ImageSet {
  if (bytes.length === 0) throw new DataError('CIFAR_EMPTY', 'is empty', file);
  if (bytes.length % CIFAR_RECORD_BYTES !== 0) {
    throw new DataError(
      'CIFAR_TRUNCATED',
      `size ${bytes.length} is not a whole number of ${CIFAR_RECORD_BYTES}-byte records (${Math.floor(bytes.length / CIFAR_RECORD_BYTES)} full records and ${bytes.length % CIFAR_RECORD_BYTES} extra bytes)`,
      file,
    );
  }
  const count = bytes.length / CIFAR_RECORD_BYTES;
  const images = new Uint8Array(count * 3072);
  const labels = new Uint8Array(count);
  for (let r = 0; r < count; r++) {
    const base = r * CIFAR_RECORD_BYTES;
    const label = bytes[base] as number;
    if (label >= numClasses) {
      throw new DataError('CIFAR_BAD_LABEL', `record ${r} has label ${label}, expected 0..${numClasses - 1}`, file);
    }
    labels[r] = label;
    const out = r * 3072;
    // CHW (3,32,32) -> HWC (32,32,3)
    for (let c = 0; c < 3; c++) {
      const plane = base + 1 + c * 1024;
      for (let p = 0; p < 1024; p++) images[out + p * 3 + c] = bytes[plane + p] as number;
    }
  }
  return { images, labels, count, height: 32, width: 32, channels: 3 };
}

export async function readCifarBatchFile(file: string, numClasses = 10): Promise<ImageSet> {
  let raw: Uint8Array;
  try {
    raw = await readFile(file);
  } catch (err) {
    throw new DataError('FILE_UNREADABLE', `cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, file, { cause: err });
  }
  return parseCifarBatch(raw, file, numClasses);
}
