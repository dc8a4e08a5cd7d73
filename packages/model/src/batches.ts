import type { ImageSet } from '@cvc/data';
import { tf } from '@cvc/tfjs-runtime';

/**
 * The images at `order[start..start+size)` as a float32 NHWC tensor scaled
 * to [0, 1] (uint8 / 255, as the seed's notebooks did).
 */
export function batchTensor(set: ImageSet, order: ArrayLike<number> | undefined, start: number, size: number): tf.Tensor4D {
  const per = set.height * set.width * set.channels;
  const buf = new Float32Array(size * per);
  const scale = 1 / 255;
  for (let i = 0; i < size; i++) {
    const src = order ? (order[start + i] as number) : start + i;
    const img = set.images.subarray(src * per, (src + 1) * per);
    const base = i * per;
    for (let p = 0; p < per; p++) buf[base + p] = (img[p] as number) * scale;
  }
  return tf.tensor4d(buf, [size, set.height, set.width, set.channels]);
}
