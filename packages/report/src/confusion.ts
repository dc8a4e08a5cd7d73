import { svgToPng, textWidth } from './render.js';
import { fitText } from './fit-text.js';
import { Svg } from './svg.js';

/** What `confusionMatrixSvg` labels and in which order it draws rows and columns. */
export interface ConfusionOptions {
  /** Name of each row (default `cluster R`). */
  readonly rowLabels?: readonly string[];
  /** Name of each column (default `class C`). */
  readonly colLabels?: readonly string[];
  /** Rows to draw, top to bottom, as indices into the matrix (default all, in order). */
  readonly rowOrder?: readonly number[];
  /** Columns to draw, left to right (default all, in order). */
  readonly colOrder?: readonly number[];
  /** Cells (row, column: matrix indices) drawn with a dark outline, e.g. the Hungarian matching. */
  readonly matched?: readonly (readonly [number, number])[];
  readonly title?: string;
  /** Axis titles (default `cluster` and `true class`). */
  readonly rowTitle?: string;
  readonly colTitle?: string;
  /** Cell size in pixels (default 44). */
  readonly cell?: number;
}

/** Complete permutation of 0..n-1 beginning with the valid, distinct entries of `order`. */
function fullOrder(order: readonly number[] | undefined, n: number): number[] {
  const out: number[] = [];
  for (const i of order ?? []) if (Number.isInteger(i) && i >= 0 && i < n && !out.includes(i)) out.push(i);
  for (let i = 0; i < n; i++) if (!out.includes(i)) out.push(i);
  return out;
}

/**
 * A confusion matrix (counts[row][column]) as an SVG heat map: one square per
 * cell, darker blue for more images, its count written in it, rows and columns
 * labelled.
 */
export function confusionMatrixSvg(matrix: readonly (readonly number[])[], opts: ConfusionOptions = {}): string {
  const nr = matrix.length;
  const nc = Math.max(0, ...matrix.map((r) => r.length));
  const rows = fullOrder(opts.rowOrder, nr);
  const cols = fullOrder(opts.colOrder, nc);
  const cell = opts.cell ?? 44;
  const rowLabel = (r: number): string => opts.rowLabels?.[r] ?? `cluster ${r}`;
  const colLabel = (c: number): string => fitText(opts.colLabels?.[c] ?? `class ${c}`, 150, 12);
  const rowTitle = opts.rowTitle ?? 'cluster';
  const colTitle = opts.colTitle ?? 'true class';
  const labelW = Math.max(40, ...rows.map((r) => textWidth(rowLabel(r), 12)));
  const colH = Math.max(30, ...cols.map((c) => textWidth(colLabel(c), 12))) * Math.SQRT1_2 + 12;
  const left = 34 + labelW + 8;
  const top = (opts.title ? 34 : 8) + 22 + colH;
  const rowTotal = matrix.map((r) => r.reduce((a, b) => a + b, 0));
  const totalW = Math.max(...rowTotal.map((t) => textWidth(String(t), 11)), textWidth('total', 11, true));
  const W = Math.ceil(left + nc * cell + Math.max(totalW + 20, colH - cell / 2 + 6));
  const H = Math.ceil(top + nr * cell + 16);
  const svg = new Svg(W, H);
  if (opts.title) svg.text(10, 22, fitText(opts.title, W - 20, 15, true), { size: 15, bold: true });
  const max = Math.max(1, ...matrix.flat());
  rows.forEach((r, y) => {
    svg.text(left - 8, top + y * cell + cell / 2 + 4, rowLabel(r), { size: 12, anchor: 'end' });
    svg.text(left + nc * cell + 8, top + y * cell + cell / 2 + 4, String(rowTotal[r] ?? 0), { size: 11, fill: '#666' });
    cols.forEach((c, x) => {
      const v = matrix[r]?.[c] ?? 0;
      const t = v / max;
      // White to a dark blue; the count in white where the cell is dark.
      const shade = (lo: number, hi: number): number => Math.round(lo + (hi - lo) * t);
      svg.rect(left + x * cell, top + y * cell, cell, cell, `rgb(${shade(255, 8)},${shade(255, 48)},${shade(255, 107)})`, '#d0d0d0');
      if (v > 0)
        svg.text(left + x * cell + cell / 2, top + y * cell + cell / 2 + 4, String(v), {
          size: cell >= 40 ? 11 : 9,
          anchor: 'middle',
          fill: t > 0.5 ? 'white' : '#222',
        });
    });
  });
  for (const [r, c] of opts.matched ?? []) {
    const y = rows.indexOf(r);
    const x = cols.indexOf(c);
    if (x >= 0 && y >= 0) svg.rect(left + x * cell + 1, top + y * cell + 1, cell - 2, cell - 2, 'none', '#d62728');
  }
  cols.forEach((c, x) => svg.text(left + x * cell + cell / 2, top - 6, colLabel(c), { size: 12, rotate: -45 }));
  svg.text(left + (nc * cell) / 2, top - colH - 8, colTitle, { size: 13, anchor: 'middle', bold: true });
  svg.text(16, top + (nr * cell) / 2, rowTitle, { size: 13, anchor: 'middle', bold: true, rotate: -90 });
  svg.text(left + nc * cell + 8, top - 6, 'total', { size: 11, bold: true, fill: '#666' });
  return svg.toString();
}

/** `confusionMatrixSvg` rendered to PNG. */
export function confusionMatrixPng(matrix: readonly (readonly number[])[], opts: ConfusionOptions = {}): Buffer {
  return svgToPng(confusionMatrixSvg(matrix, opts));
}
