import { PNG } from 'pngjs';

/**
 * A confusion matrix as a PNG heat map: one square per (cluster row, class
 * column), darker for more images, columns in the matched order so a good
 * clustering shows a dark diagonal.
 */
export function confusionPng(matrix: number[][], columnOrder: number[], cell = 32): Buffer {
  const rows = matrix.length;
  const cols = Math.max(...matrix.map((r) => r.length));
  const png = new PNG({ width: cols * cell + 1, height: rows * cell + 1 });
  const max = Math.max(1, ...matrix.flat());
  for (let y = 0; y < png.height; y++) {
    for (let x = 0; x < png.width; x++) {
      const i = (y * png.width + x) * 4;
      const grid = x % cell === 0 || y % cell === 0;
      const r = Math.floor(y / cell);
      const c = columnOrder[Math.floor(x / cell)] ?? Math.floor(x / cell);
      const v = grid ? 0.5 : 1 - (matrix[r]?.[c] ?? 0) / max;
      const shade = Math.round(255 * (grid ? 0.75 : v));
      png.data[i] = shade;
      png.data[i + 1] = grid ? shade : Math.round(255 * (0.35 + 0.65 * v));
      png.data[i + 2] = grid ? shade : 255;
      png.data[i + 3] = 255;
    }
  }
  return PNG.sync.write(png);
}
