import { categoryColor } from './palette.js';
import { svgToPng, textWidth } from './render.js';
import { fitText } from './fit-text.js';
import { css, Svg } from './svg.js';
import { niceTicks, tickLabel } from './ticks.js';

/** One fold's loss per epoch. */
export interface FoldCurve {
  readonly fold: number;
  readonly train: readonly number[];
  readonly val: readonly number[];
}

/** Chart size in pixels (default 900 x 520) and an optional title. */
export interface CurveOptions {
  readonly width?: number;
  readonly height?: number;
  readonly title?: string;
}

/** The SVG of `lossCurves`. */
export function lossCurvesSvg(folds: readonly FoldCurve[], opts: CurveOptions = {}): string {
  const W = opts.width ?? 900;
  const H = opts.height ?? 520;
  const svg = new Svg(W, H);
  const legendW = Math.max(...['validation', ...folds.map((f) => `fold ${f.fold}`)].map((s) => textWidth(s, 13) + 50));
  const left = 80;
  const right = legendW + 20;
  const top = opts.title ? 48 : 24;
  const bottom = 56;
  const all = folds.flatMap((f) => [...f.train, ...f.val]).filter((v) => Number.isFinite(v));
  const epochs = Math.max(1, ...folds.map((f) => Math.max(f.train.length, f.val.length)));
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  const pad = (hi - lo) * 0.05 || 0.01;
  lo = Math.max(0, lo - pad);
  hi += pad;
  const px = (e: number): number => left + (epochs === 1 ? 0.5 : (e - 1) / (epochs - 1)) * (W - left - right);
  const py = (v: number): number => top + (1 - (v - lo) / (hi - lo)) * (H - top - bottom);
  const ink = '#333';
  for (const t of niceTicks(lo, hi)) {
    if (t < lo || t > hi) continue;
    svg.line(left, py(t), W - right, py(t), '#e2e2e2');
    svg.text(left - 8, py(t) + 4, tickLabel(t), { size: 12, anchor: 'end', fill: ink });
  }
  for (const e of niceTicks(1, epochs, Math.min(10, epochs)).filter((e) => Number.isInteger(e) && e >= 1)) {
    svg.line(px(e), H - bottom, px(e), H - bottom + 5, ink);
    svg.text(px(e), H - bottom + 20, String(e), { size: 12, anchor: 'middle', fill: ink });
  }
  svg.line(left, top, left, H - bottom, ink, 1.5);
  svg.line(left, H - bottom, W - right, H - bottom, ink, 1.5);
  svg.text((left + W - right) / 2, H - 14, 'epoch', { size: 13, anchor: 'middle', fill: ink });
  svg.text(22, (top + H - bottom) / 2, 'loss', { size: 13, anchor: 'middle', fill: ink, rotate: -90 });
  if (opts.title) svg.text(left, 28, fitText(opts.title, W - left - 10, 16, true), { size: 16, bold: true });
  const lx = W - right + 16;
  folds.forEach((f, i) => {
    const color = css(categoryColor(i, folds.length));
    const line = (ys: readonly number[], dash: number): void => {
      const pts = ys.map((v, e) => [px(e + 1), py(v)] as [number, number]).filter(([, y]) => Number.isFinite(y));
      if (pts.length > 1) svg.polyline(pts, color, 2, dash);
      else if (pts[0]) svg.circle(pts[0][0], pts[0][1], 3.5, color);
    };
    line(f.train, 0);
    line(f.val, 6);
    const ly = top + 8 + i * 22;
    svg.line(lx, ly, lx + 30, ly, color, 2.5);
    svg.text(lx + 38, ly + 4.5, `fold ${f.fold}`, { size: 13 });
  });
  const ly = top + 8 + folds.length * 22 + 12;
  svg.line(lx, ly, lx + 30, ly, ink, 2);
  svg.text(lx + 38, ly + 4.5, 'train', { size: 13 });
  svg.line(lx, ly + 22, lx + 30, ly + 22, ink, 2, 6);
  svg.text(lx + 38, ly + 26.5, 'validation', { size: 13 });
  return svg.toString();
}

/**
 * Each fold's training (solid) and validation (dashed) loss per epoch on one
 * chart as a PNG, one colour per fold, with axes, ticks and a legend.
 */
export function lossCurves(folds: readonly FoldCurve[], opts: CurveOptions = {}): Buffer {
  return svgToPng(lossCurvesSvg(folds, opts));
}
