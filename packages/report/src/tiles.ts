import { Canvas } from './canvas.js';

/** Images in HWC order, one after another: uint8 (0-255) or float (0-1). */
export interface ImageStack {
  readonly images: Float32Array | Uint8Array;
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

/** Tiles `cols` wide, each image scaled `scale` times (nearest neighbour), `gap` white pixels around each. */
export interface TileLayout {
  readonly cols: number;
  readonly scale: number;
  readonly gap: number;
}

/** The pixel size of `count` tiles laid out `layout`-wise. */
export function tileSheetSize(s: Pick<ImageStack, 'height' | 'width'>, count: number, l: TileLayout): { width: number; height: number } {
  const rows = Math.max(1, Math.ceil(count / l.cols));
  return { width: l.cols * (s.width * l.scale + l.gap) + l.gap, height: rows * (s.height * l.scale + l.gap) + l.gap };
}

/**
 * The images at `indices` (in that order) as one PNG of tiles, row by row;
 * one channel is drawn grey, three as RGB.
 */
export function tileSheet(s: ImageStack, indices: readonly number[], l: TileLayout): Buffer {
  const { width, height } = tileSheetSize(s, indices.length, l);
  const canvas = new Canvas(width, height);
  const { height: h, width: w, channels } = s;
  const per = h * w * channels;
  const max = s.images instanceof Uint8Array ? 255 : 1;
  indices.forEach((idx, n) => {
    const ox = l.gap + (n % l.cols) * (w * l.scale + l.gap);
    const oy = l.gap + Math.floor(n / l.cols) * (h * l.scale + l.gap);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const base = idx * per + (y * w + x) * channels;
        const px = (c: number): number => Math.max(0, Math.min(255, Math.round(((s.images[base + Math.min(c, channels - 1)] as number) / max) * 255)));
        canvas.fillRect(ox + x * l.scale, oy + y * l.scale, l.scale, l.scale, [px(0), px(1), px(2)]);
      }
    }
  });
  return canvas.encode();
}
