import { setImmediate as yieldToEvents } from 'node:timers/promises';
import { throwIfAborted } from '@cvc/core';
import { imageBytes, type ImageSet } from '@cvc/data';
import { embedImages } from '@cvc/model';
import type { tf } from '@cvc/tfjs-runtime';

/** Hears the images embedded so far of `total`, after each slice. */
export type SliceListener = (done: number, total: number) => void;

/** Images embedded between two looks at the abort signal (about 2 s of a seed model on one core). */
export const EMBED_SLICE = 4096;

/**
 * `embedImages` of `set`, a slice of `slice` images at a time, yielding to
 * the event loop and checking `signal` between slices: a whole split
 * (60,000 images, half a minute) is one synchronous call otherwise, and
 * Ctrl-C would wait for its end. `onSlice` hears the images done so far.
 */
export async function embedAbortable(
  encoder: tf.LayersModel,
  set: ImageSet,
  batchSize: number,
  signal: AbortSignal | undefined,
  onSlice?: SliceListener,
  slice = EMBED_SLICE,
): Promise<{ data: Float32Array; n: number; d: number }> {
  if (set.count <= slice) {
    throwIfAborted(signal, 'embedding');
    return embedImages(encoder, set, batchSize);
  }
  const per = imageBytes(set);
  let out: Float32Array | undefined;
  let d = 0;
  for (let start = 0; start < set.count; start += slice) {
    throwIfAborted(signal, 'embedding');
    const end = Math.min(set.count, start + slice);
    const part = { ...set, images: set.images.subarray(start * per, end * per), labels: set.labels.subarray(start, end), count: end - start };
    const codes = embedImages(encoder, part, batchSize, (i) => `record ${start + i} of ${set.count}`);
    d = codes.d;
    out ??= new Float32Array(set.count * d);
    out.set(codes.data, start * d);
    onSlice?.(end, set.count);
    // Lets the SIGINT handler run (it aborts `signal`).
    await yieldToEvents();
  }
  return { data: out as Float32Array, n: set.count, d };
}
