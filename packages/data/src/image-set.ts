import { DataError } from './errors.js';

/**
 * A set of uint8 images in HWC order, one label byte each. The payload is
 * `count * height * width * channels` bytes, image after image.
 */
export interface ImageSet {
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

/** Bytes in one image. */
export function imageBytes(set: Pick<ImageSet, 'height' | 'width' | 'channels'>): number {
  return set.height * set.width * set.channels;
}

/** The images at `indices` (in that order) as a new set. */
export function selectImages(set: ImageSet, indices: ArrayLike<number>): ImageSet {
  const per = imageBytes(set);
  const images = new Uint8Array(indices.length * per);
  const labels = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const src = indices[i] as number;
    images.set(set.images.subarray(src * per, (src + 1) * per), i * per);
    labels[i] = set.labels[src] as number;
  }
  return { images, labels, count: indices.length, height: set.height, width: set.width, channels: set.channels };
}

/** Concatenates sets of the same image shape. */
export function concatImages(sets: readonly ImageSet[]): ImageSet {
  const first = sets[0];
  if (first === undefined) throw new Error('concatImages needs at least one set');
  const per = imageBytes(first);
  const count = sets.reduce((n, s) => n + s.count, 0);
  const images = new Uint8Array(count * per);
  const labels = new Uint8Array(count);
  let at = 0;
  for (const s of sets) {
    if (s.height !== first.height || s.width !== first.width || s.channels !== first.channels) {
      throw new DataError(
        'SHAPE_MISMATCH',
        `cannot concatenate ${s.height}x${s.width}x${s.channels} images with ${first.height}x${first.width}x${first.channels} (the parts of one dataset must have one image shape)`,
      );
    }
    images.set(s.images, at * per);
    labels.set(s.labels, at);
    at += s.count;
  }
  return { images, labels, count, height: first.height, width: first.width, channels: first.channels };
}

/** The first `n` images (or all of them when there are fewer). */
export function headImages(set: ImageSet, n: number): ImageSet {
  const count = Math.min(n, set.count);
  const per = imageBytes(set);
  return { ...set, count, images: set.images.subarray(0, count * per), labels: set.labels.subarray(0, count) };
}

/** Images per class, indexed by label, over `numClasses` classes. */
export function classHistogram(labels: Uint8Array, numClasses: number): number[] {
  const h = new Array<number>(numClasses).fill(0);
  for (const l of labels) h[l] = (h[l] ?? 0) + 1;
  return h;
}
