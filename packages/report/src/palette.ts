import type { Rgb } from './svg.js';

// Tableau's 10 and 20 categorical colours (matplotlib's tab10 / tab20).
const TAB10: Rgb[] = [
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
const TAB20_LIGHT: Rgb[] = [
  [174, 199, 232],
  [255, 187, 120],
  [152, 223, 138],
  [255, 152, 150],
  [197, 176, 213],
  [196, 156, 148],
  [247, 182, 210],
  [199, 199, 199],
  [219, 219, 141],
  [158, 218, 229],
];

function hsl(h: number, s: number, l: number): Rgb {
  const f = (k: number): number => {
    const a = s * Math.min(l, 1 - l);
    const t = (k + h / 30) % 12;
    return Math.round(255 * (l - a * Math.max(-1, Math.min(t - 3, 9 - t, 1))));
  };
  return [f(0), f(8), f(4)];
}

/**
 * The colour of category `i` out of `count`: tab10 up to 10 categories, tab20
 * up to 20, evenly spaced hues (golden angle) beyond.
 */
export function categoryColor(i: number, count: number): Rgb {
  if (count <= 10) return TAB10[i % 10] as Rgb;
  if (count <= 20) return (i < 10 ? TAB10[i] : TAB20_LIGHT[i - 10]) as Rgb;
  return hsl((i * 137.508) % 360, 0.65, i % 2 ? 0.45 : 0.6);
}
