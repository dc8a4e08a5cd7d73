import { join } from 'node:path';
import { PNG } from 'pngjs';
import { loadDataset, type ImageFolderProblem, selectImages, stratifiedSubset, imageBytes, type ImageSet, type LocateOptions } from '@cvc/data';
import type { tf } from '@cvc/tfjs-runtime';
import { recordPaths } from './assignments.js';
import { embedAbortable, type SliceListener } from './embed-slices.js';

/** A file left out of `--images --skip-invalid`, with why (the import's own problem record). */
export type SkippedImage = ImageFolderProblem;

/** The codes of a set of images under an encoder, with where each image came from. */
export interface EmbeddedImages {
  readonly codes: { data: Float32Array; n: number; d: number };
  /** One per image; meaningful only when `labelled`. */
  readonly labels: Uint8Array;
  readonly labelled: boolean;
  readonly classNames: readonly string[];
  /** The CSV's path of each image: relative to the image folder, the record's source path, or `split:index`. */
  readonly paths: readonly string[];
  /** The user's file of each image (absolute), for `--copy-to`; absent for records of a dataset. */
  readonly files?: readonly string[];
  /** The image folder (absolute), for `--images`. */
  readonly root?: string;
  /** The pixels, when kept (datasets always; folders for `--baseline`). */
  readonly pixels?: ImageSet;
  readonly skipped: readonly SkippedImage[];
  /** Files of the folder that are not images (or hidden), not counted as images. */
  readonly ignored?: { readonly hidden: number; readonly notImage: number };
  /** Images of a folder whose channels are not the encoder's and were converted (greyscale repeated to RGB, colour to grey). */
  readonly converted?: { readonly count: number; readonly of: number; readonly to: 1 | 3 };
}

/** The stderr line of a folder's channel conversion, said once: what the images are, what the encoder takes, what was done. */
export function conversionNote(c: NonNullable<EmbeddedImages['converted']>): string {
  const which = c.count === c.of ? 'the images are' : `${c.count} of the ${c.of} images are`;
  return c.to === 3
    ? `${which} greyscale; the encoder takes 3 channels: each image's grey value is repeated in R, G and B`
    : `${which} colour (RGB); the encoder takes 1 channel: each image is converted to greyscale`;
}

/** The [height, width, channels] an encoder takes. */
export function encoderInputShape(encoder: tf.LayersModel): [number, number, number] {
  const s = encoder.inputs[0]?.shape ?? [];
  return [s[1] ?? 0, s[2] ?? 0, s[3] ?? 0];
}

/**
 * A split of a dataset read from its files (`NAME|PATH`, as `cvc dataset
 * import` takes), optionally a seeded stratified subset of `limit` images,
 * embedded by `encoder`. Paths are `split:index` (the index in the whole split).
 */
export async function embedDataset(
  encoder: tf.LayersModel,
  opts: LocateOptions & { dataset: string; split: 'test' | 'train'; limit?: number; batchSize: number; signal?: AbortSignal; onSlice?: SliceListener },
): Promise<EmbeddedImages> {
  const ds = await loadDataset(opts.dataset, opts);
  const whole = opts.split === 'train' ? ds.train : ds.test;
  const idx = opts.limit !== undefined && opts.limit < whole.count ? stratifiedSubset(whole.labels, opts.limit, 0) : undefined;
  const set = idx ? selectImages(whole, idx) : whole;
  const all = recordPaths(opts.split, whole.count);
  const paths = idx ? Array.from(idx, (i) => all[i] as string) : all;
  const codes = await embedAbortable(encoder, set, opts.batchSize, opts.signal, opts.onSlice);
  return { codes, labels: set.labels, labelled: true, classNames: ds.classNames, paths, pixels: set, skipped: [] };
}

/** Image `i` of `set` as PNG bytes (greyscale or RGB), for `--copy-to` of a dataset's records. */
export function imagePng(set: ImageSet, i: number): Uint8Array {
  const per = imageBytes(set);
  const px = set.images.subarray(i * per, (i + 1) * per);
  const png = new PNG({ width: set.width, height: set.height });
  for (let p = 0; p < set.width * set.height; p++) {
    const c = set.channels;
    png.data[p * 4] = px[p * c] as number;
    png.data[p * 4 + 1] = px[p * c + (c === 3 ? 1 : 0)] as number;
    png.data[p * 4 + 2] = px[p * c + (c === 3 ? 2 : 0)] as number;
    png.data[p * 4 + 3] = 255;
  }
  return new Uint8Array(PNG.sync.write(png));
}

/**
 * Where a record with no file at hand goes inside its cluster folder, as
 * PNG: `test:17` becomes `test/00017.png`, an imported image's source path
 * keeps its name (`shirt/7.jpg` becomes `shirt/7.jpg.png`).
 */
export function recordDest(path: string): string {
  const m = /^(train|test):(\d+)$/.exec(path);
  if (m) return join(m[1] as string, `${(m[2] as string).padStart(5, '0')}.png`);
  return /\.png$/i.test(path) ? path : `${path}.png`;
}
