import { categoryColor } from './palette.js';
import { svgToPng, textWidth } from './render.js';
import { fitText } from './fit-text.js';
import { css, Svg, type Rgb } from './svg.js';

/** One panel of a scatter map: the same points coloured by one categorical variable. */
export interface ScatterPanel {
  readonly title: string;
  /** Category of each point, 0..names.length-1 (others are drawn grey, unnamed). */
  readonly category: ArrayLike<number>;
  /** Legend text of each category. */
  readonly names: readonly string[];
  /** Colour of each category (default the categorical palette in category order). */
  readonly colors?: readonly Rgb[];
  /** The order of the legend's entries, as category indices (default 0, 1, ...). */
  readonly legendOrder?: readonly number[];
}

/** Layout of a scatter map: panel side in pixels (default 460), title, axis titles (default `dimension 1/2`). */
export interface ScatterOptions {
  readonly title?: string;
  readonly panelSize?: number;
  readonly xTitle?: string;
  readonly yTitle?: string;
  /** Draw at most this many points, an even sample of them beyond (default 30,000). */
  readonly maxPoints?: number;
}

/** The points drawn, in a shuffled (seeded, reproducible) order so no category hides under another. */
function drawOrder(n: number, max: number): number[] {
  const stride = Math.max(1, n / max);
  const idx: number[] = [];
  for (let i = 0; i < n && idx.length < max; i++) idx.push(Math.floor(i * stride));
  const kept = idx.filter((v, i) => v < n && v !== idx[i - 1]);
  let s = 0x9e3779b9;
  for (let i = kept.length - 1; i > 0; i--) {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    const j = s % (i + 1);
    [kept[i], kept[j]] = [kept[j] as number, kept[i] as number];
  }
  return kept;
}

/**
 * 2-D points (`xy`: x0, y0, x1, y1, ...) drawn once per panel, side by side,
 * each coloured by its own categories with a legend (name and count) to its
 * right. Axes are unit-free (a PCA or UMAP map), so they carry titles, not ticks.
 */
export function scatterMapSvg(xy: ArrayLike<number>, panels: readonly ScatterPanel[], opts: ScatterOptions = {}): string {
  const n = Math.floor(xy.length / 2);
  const S = opts.panelSize ?? 460;
  const order = drawOrder(n, opts.maxPoints ?? 30_000);
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i] as number;
    const y = xy[2 * i + 1] as number;
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    [x0, x1, y0, y1] = [Math.min(x0, x), Math.max(x1, x), Math.min(y0, y), Math.max(y1, y)];
  }
  if (!Number.isFinite(x0)) [x0, x1, y0, y1] = [0, 1, 0, 1];
  const span = Math.max(x1 - x0, y1 - y0) || 1;
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const r = order.length <= 2000 ? 2.6 : order.length <= 10_000 ? 1.7 : 1.2;
  const legendSize = 12;
  const counts = panels.map((p) => {
    const c = new Array<number>(p.names.length).fill(0);
    for (let i = 0; i < n; i++) {
      const k = p.category[i] as number;
      if (k >= 0 && k < c.length) c[k] = (c[k] as number) + 1;
    }
    return c;
  });
  const legendText = (p: number, k: number): string => `${fitText(panels[p]?.names[k] ?? '', 150, legendSize)} (${counts[p]?.[k] ?? 0})`;
  const legendW = panels.map((p, pi) => 36 + Math.max(60, ...p.names.map((_, k) => textWidth(legendText(pi, k), legendSize))));
  const rowH = 18;
  const top = (opts.title ? 40 : 10) + 26;
  const maxRows = Math.max(0, ...panels.map((p) => p.names.length));
  const H = Math.ceil(top + Math.max(S, maxRows * rowH) + 40);
  const lefts: number[] = [];
  let W = 0;
  panels.forEach((_, p) => {
    lefts.push(W + 36);
    W += 36 + S + 14 + (legendW[p] as number) + 10;
  });
  const svg = new Svg(Math.ceil(Math.max(W, 300)), H);
  if (opts.title) svg.text(12, 26, fitText(opts.title, W - 24, 16, true), { size: 16, bold: true });
  const pad = S * 0.03;
  const px = (x: number, left: number): number => left + pad + ((x - cx) / span + 0.5) * (S - 2 * pad);
  const py = (y: number): number => top + pad + (0.5 - (y - cy) / span) * (S - 2 * pad);
  panels.forEach((p, pi) => {
    const left = lefts[pi] as number;
    svg.text(left + S / 2, top - 10, fitText(p.title, S, 14, true), { size: 14, anchor: 'middle', bold: true });
    svg.rect(left, top, S, S, '#fbfbfb', '#999');
    const colors = p.names.map((_, k) => css(p.colors?.[k] ?? categoryColor(k, p.names.length)));
    for (const i of order) {
      const k = p.category[i] as number;
      const x = xy[2 * i] as number;
      const y = xy[2 * i + 1] as number;
      if (Number.isFinite(x) && Number.isFinite(y)) svg.circle(px(x, left), py(y), r, colors[k] ?? '#aaa', 0.6);
    }
    svg.text(left + S / 2, top + S + 20, opts.xTitle ?? 'dimension 1', { size: 12, anchor: 'middle', fill: '#555' });
    svg.text(left - 12, top + S / 2, opts.yTitle ?? 'dimension 2', { size: 12, anchor: 'middle', fill: '#555', rotate: -90 });
    const lx = left + S + 14;
    (p.legendOrder ?? p.names.map((_, k) => k)).forEach((k, row) => {
      const ly = top + 10 + row * rowH;
      svg.circle(lx + 7, ly - 4, 5.5, colors[k] as string);
      svg.text(lx + 20, ly, legendText(pi, k), { size: legendSize });
    });
  });
  return svg.toString();
}

/** `scatterMapSvg` rendered to PNG. */
export function scatterMapPng(xy: ArrayLike<number>, panels: readonly ScatterPanel[], opts: ScatterOptions = {}): Buffer {
  return svgToPng(scatterMapSvg(xy, panels, opts));
}
