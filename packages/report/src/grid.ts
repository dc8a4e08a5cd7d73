import { Canvas } from './canvas.js';

/**
 * A rows x cols grid of images (HWC, values in [0, 1] or uint8), each scaled
 * up `scale` times with a 2-pixel white gutter, like the seed's figures.
 */
export function imageGrid(
  images: Float32Array | Uint8Array,
  count: number,
  h: number,
  w: number,
  channels: number,
  opts: { rows?: number; cols?: number; scale?: number } = {},
): Buffer {
  const rows = opts.rows ?? 5;
  const cols = opts.cols ?? 5;
  const scale = opts.scale ?? 3;
  const gap = 2;
  const canvas = new Canvas(cols * (w * scale + gap) + gap, rows * (h * scale + gap) + gap, [255, 255, 255]);
  const per = h * w * channels;
  const max = images instanceof Uint8Array ? 255 : 1;
  for (let n = 0; n < Math.min(count, rows * cols); n++) {
    const ox = gap + (n % cols) * (w * scale + gap);
    const oy = gap + Math.floor(n / cols) * (h * scale + gap);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const base = n * per + (y * w + x) * channels;
        const px = (c: number): number => Math.max(0, Math.min(255, Math.round(((images[base + Math.min(c, channels - 1)] as number) / max) * 255)));
        canvas.fillRect(ox + x * scale, oy + y * scale, scale, scale, [px(0), px(1), px(2)]);
      }
    }
  }
  return canvas.encode();
}
