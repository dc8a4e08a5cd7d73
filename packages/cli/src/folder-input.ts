import { join } from 'node:path';
import { throwIfAborted } from '@cvc/core';
import { DataError, decodeImageWithInfo, InvalidImagesError, listImageFolder, type ImageFit, type ImageSet } from '@cvc/data';
import { embedImages } from '@cvc/model';
import type { tf } from '@cvc/tfjs-runtime';
import { UsageError } from './errors.js';
import { encoderInputShape, type EmbeddedImages, type SkippedImage } from './cluster-input.js';
import type { Progress } from './progress.js';

/** How `--images DIR` is read. */
export interface FolderOptions {
  readonly dir: string;
  /** How each image is fitted to the encoder's input (as `cvc dataset import --fit`). */
  readonly fit: ImageFit;
  /** Skip undecodable files (listing each with its reason) instead of failing on the first. */
  readonly skipInvalid: boolean;
  readonly batchSize: number;
  /** Keep every image's pixels (for `--baseline`); otherwise only the codes are kept. */
  readonly keepPixels: boolean;
  readonly progress?: Progress;
  readonly signal?: AbortSignal;
}

/** Images decoded at once (libvips decodes on the libuv thread pool). */
const DECODE_CONCURRENCY = 8;

/** The reason of a DataError without its leading `file: `. */
const reasonOf = (e: DataError): string => (e.file !== undefined && e.message.startsWith(`${e.file}: `) ? e.message.slice(e.file.length + 2) : e.message);

/**
 * Every image of a folder (class subfolders and a `test/` folder as
 * `cvc dataset import` reads them, train and test together), decoded and
 * resized to the encoder's input shape and embedded a batch at a time, so
 * memory holds the codes and one batch of pixels (all pixels only with
 * `keepPixels`). Bad files (undecodable, truncated, empty, a link loop or
 * out of the folder) fail the whole call with an InvalidImagesError
 * listing each, or with `skipInvalid` are left out and listed in `skipped`,
 * as the import does. Images whose channels are not the encoder's are
 * converted (greyscale repeated to RGB, colour to grey) and counted in
 * `converted`, for the caller to say so.
 */
export async function embedFolder(encoder: tf.LayersModel, opts: FolderOptions): Promise<EmbeddedImages> {
  const [height, width, channels] = encoderInputShape(encoder);
  if (channels !== 1 && channels !== 3) throw new UsageError(`the encoder takes ${height}x${width}x${channels} images; --images needs 1 or 3 channels`);
  const listing = await listImageFolder(opts.dir, { signal: opts.signal });
  // Bad files are all collected: skipped with --skip-invalid, else listed together in one error (as the import does).
  const skipped: SkippedImage[] = listing.problems.map((p) => ({ path: p.path, code: p.code, reason: p.reason }));
  const per = height * width * channels;
  const d = encoder.outputs[0]?.shape[1] as number;
  const entries = listing.entries;
  const codeParts: Float32Array[] = [];
  const pixelParts: Uint8Array[] = [];
  const paths: string[] = [];
  const files: string[] = [];
  const labels: number[] = [];
  let converted = 0;
  for (let start = 0; start < entries.length; start += opts.batchSize) {
    throwIfAborted(opts.signal, `reading ${opts.dir}`);
    const batch = entries.slice(start, start + opts.batchSize);
    const pixels = new Uint8Array(batch.length * per);
    let n = 0;
    for (let i = 0; i < batch.length; i += DECODE_CONCURRENCY) {
      const group = batch.slice(i, i + DECODE_CONCURRENCY);
      const decoded = await Promise.allSettled(
        group.map((e) => decodeImageWithInfo(join(listing.root, e.path), { height, width, channels, fit: opts.fit }, join(opts.dir, e.path))),
      );
      decoded.forEach((r, j) => {
        const e = group[j] as (typeof group)[number];
        if (r.status === 'rejected') {
          const err: unknown = r.reason;
          if (!(err instanceof DataError)) throw err;
          skipped.push({ path: e.path, code: err.code, reason: reasonOf(err) });
          return;
        }
        pixels.set(r.value.pixels, n * per);
        if (r.value.info.channels !== channels) converted++;
        n++;
        paths.push(e.path);
        files.push(join(listing.root, e.path));
        labels.push(e.label);
      });
    }
    const set: ImageSet = { images: pixels.subarray(0, n * per), labels: new Uint8Array(n), count: n, height, width, channels };
    // Once a file is bad without --skip-invalid, the rest is only checked.
    if (n > 0 && (opts.skipInvalid || skipped.length === 0))
      codeParts.push(embedImages(encoder, set, opts.batchSize, (i) => paths[paths.length - n + i] as string).data);
    if (opts.keepPixels) pixelParts.push(set.images);
    opts.progress?.set('images', {
      label: `embedding ${opts.dir}`,
      value: Math.min(start + batch.length, entries.length),
      total: entries.length,
      detail: 'images',
    });
  }
  if (!opts.skipInvalid && skipped.length > 0) throw new InvalidImagesError(opts.dir, skipped, 'nothing written');
  const count = paths.length;
  if (count === 0) throw new DataError('IMAGE_FOLDER_EMPTY', `no image could be read (${skipped.length} skipped)`, opts.dir);
  const data = new Float32Array(count * d);
  let at = 0;
  for (const c of codeParts) {
    data.set(c, at);
    at += c.length;
  }
  const labelArray = Uint8Array.from(labels);
  let pixels: ImageSet | undefined;
  if (opts.keepPixels) {
    const images = new Uint8Array(count * per);
    let o = 0;
    for (const p of pixelParts) {
      images.set(p, o);
      o += p.length;
    }
    pixels = { images, labels: labelArray, count, height, width, channels };
  }
  return {
    codes: { data, n: count, d },
    labels: labelArray,
    labelled: listing.labeled,
    classNames: listing.classNames,
    paths,
    files,
    root: listing.root,
    ...(pixels ? { pixels } : {}),
    skipped,
    ignored: listing.ignored,
    ...(converted > 0 ? { converted: { count: converted, of: count, to: channels } } : {}),
  };
}
