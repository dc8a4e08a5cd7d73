import { Canvas, type Rgb } from './canvas.js';
import { drawText, textWidth } from './font.js';

export interface FoldCurve {
  readonly fold: number;
  readonly train: readonly number[];
  readonly val: readonly number[];
}

const PALETTE: Rgb[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
  [23, 190, 207],
];

function niceTicks(lo: number, hi: number, n = 5): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const step0 = span / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(6));
  return out;
}

/**
 * Each fold's training (solid) and validation (dashed) loss per epoch on one
 * chart, one colour per fold, with axes, ticks and a legend.
 */
export function lossCurves(folds: readonly FoldCurve[], opts: { width?: number; height?: number; title?: string } = {}): Buffer {
  const W = opts.width ?? 900;
  const H = opts.height ?? 520;
  const c = new Canvas(W, H);
  const left = 90;
  const right = 170;
  const top = 40;
  const bottom = 60;
  const all = folds.flatMap((f) => [...f.train, ...f.val]).filter((v) => Number.isFinite(v));
  const epochs = Math.max(1, ...folds.map((f) => Math.max(f.train.length, f.val.length)));
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  const pad = (hi - lo) * 0.05 || 0.01;
  lo = Math.max(0, lo - pad);
  hi += pad;
  const px = (e: number): number => left + ((e - 1) / Math.max(1, epochs - 1)) * (W - left - right);
  const py = (v: number): number => top + (1 - (v - lo) / (hi - lo)) * (H - top - bottom);
  const ink: Rgb = [40, 40, 40];
  const grid: Rgb = [225, 225, 225];
  for (const t of niceTicks(lo, hi)) {
    c.line(left, py(t), W - right, py(t), grid);
    const label = t.toPrecision(3).replace(/0+$/, '').replace(/\.$/, '');
    drawText(c, label, left - 8 - textWidth(label), py(t) - 5, ink);
  }
  for (const e of niceTicks(1, epochs).filter((e) => Number.isInteger(e) && e >= 1)) {
    c.line(px(e), H - bottom, px(e), H - bottom + 5, ink);
    drawText(c, String(e), px(e) - textWidth(String(e)) / 2, H - bottom + 10, ink);
  }
  c.line(left, top, left, H - bottom, ink, 2);
  c.line(left, H - bottom, W - right, H - bottom, ink, 2);
  drawText(c, 'epoch', (left + W - right) / 2 - textWidth('epoch') / 2, H - 25, ink);
  drawText(c, 'loss', 10, top - 25, ink);
  if (opts.title) drawText(c, opts.title, left, 10, ink);
  folds.forEach((f, i) => {
    const color = PALETTE[i % PALETTE.length] as Rgb;
    const draw = (ys: readonly number[], dash: number): void => {
      for (let e = 1; e < ys.length; e++) c.line(px(e), py(ys[e - 1] as number), px(e + 1), py(ys[e] as number), color, 2, dash);
      if (ys.length === 1) c.fillRect(px(1) - 2, py(ys[0] as number) - 2, 5, 5, color);
    };
    draw(f.train, 0);
    draw(f.val, 6);
    const ly = top + i * 22;
    c.line(W - right + 15, ly + 5, W - right + 45, ly + 5, color, 2);
    drawText(c, `fold ${f.fold}`, W - right + 55, ly, ink);
  });
  const ly = top + folds.length * 22 + 10;
  c.line(W - right + 15, ly + 5, W - right + 45, ly + 5, ink, 2);
  drawText(c, 'train', W - right + 55, ly, ink);
  c.line(W - right + 15, ly + 27, W - right + 45, ly + 27, ink, 2, 6);
  drawText(c, 'val', W - right + 55, ly + 22, ink);
  return c.encode();
}
