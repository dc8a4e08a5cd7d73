import type { ClusterSummary } from './cluster-summary.js';
import { fitText } from './fit-text.js';
import { drawTiles, tilesHeight } from './grid.js';
import { svgToPng } from './render.js';
import { Svg } from './svg.js';
import { tileSheetSize, type ImageStack, type TileLayout } from './tiles.js';

/** How a cluster's picture is laid out and captioned. */
export interface ClusterGridOptions {
  /** Side of the grid of the most confident members (default 8: 64 images). */
  readonly side?: number;
  /** How many of the least confident members are shown under it, least confident first (default `side`). */
  readonly least?: number;
  /** Nearest-neighbour upscaling (default: images about 84 pixels wide). */
  readonly scale?: number;
  /** Caption of member i (e.g. its true class), or none. */
  readonly caption?: (i: number) => string;
  /** The true class of member i (or undefined); captions of members of another class than the cluster's most frequent are drawn red. */
  readonly classOf?: (i: number) => number | undefined;
  /** Names of the classes, for the heading. */
  readonly classNames?: readonly string[];
}

const pct = (x: number): string => `${Math.round(x * 100)}%`;

/** The heading of a cluster's picture: its size and, with labels, what it holds. */
export function clusterHeading(s: ClusterSummary, classNames?: readonly string[]): string {
  const base = `cluster ${s.cluster}: ${s.members.length} image${s.members.length === 1 ? '' : 's'}`;
  if (!classNames || s.members.length === 0) return base;
  const name = (c: number): string => classNames[c] ?? `class ${c}`;
  const matched = s.matchedClass >= 0 ? `, matched to ${name(s.matchedClass)} (${pct(s.matchedShare)} of its images)` : ', matched to no class';
  const majority = s.majorityClass !== s.matchedClass ? `; most are ${name(s.majorityClass)} (${pct(s.majorityShare)})` : '';
  return base + matched + majority;
}

/**
 * One cluster as a picture: a heading, its most confident members (side x
 * side) and a row of its least confident, each captioned.
 */
export function clusterGridSvg(set: ImageStack, s: ClusterSummary, opts: ClusterGridOptions = {}): string {
  const side = opts.side ?? 8;
  const scale = opts.scale ?? Math.max(1, Math.round(84 / Math.max(set.height, set.width)));
  const layout: TileLayout = { cols: side, scale, gap: 2 };
  const most = s.members.slice(0, side * side);
  const rest = s.members.length - most.length;
  const least = s.members.slice(s.members.length - Math.min(opts.least ?? side, rest)).reverse();
  const captioned = opts.caption !== undefined;
  const W = Math.max(tileSheetSize(set, side, layout).width, 360);
  const heading = fitText(clusterHeading(s, opts.classNames), W - 16, 14, true);
  const section = 13;
  let H = 34 + 22 + tilesHeight(set, Math.max(1, most.length), layout, captioned) + 8;
  if (least.length) H += 22 + tilesHeight(set, least.length, layout, captioned) + 8;
  const svg = new Svg(W, Math.ceil(H));
  svg.text(8, 22, heading, { size: 14, bold: true });
  const caps = (idx: readonly number[]): string[] | undefined => (captioned ? idx.map((i) => opts.caption?.(i) ?? '') : undefined);
  const colors = (idx: readonly number[]): string[] =>
    idx.map((i) => {
      const c = opts.classOf?.(i);
      // Against the class the cluster mostly holds (the matched class can be a minority of it).
      return c !== undefined && s.majorityClass >= 0 && c !== s.majorityClass ? '#c62828' : '#222';
    });
  let y = 34;
  if (most.length === 0) {
    svg.text(8, y + 16, 'no images in this cluster', { size: section, fill: '#666' });
    return svg.toString();
  }
  svg.text(8, y + 15, `${most.length} most confident`, { size: section, fill: '#444' });
  y += 22;
  y += drawTiles(svg, 0, y, set, most, layout, caps(most), colors(most)) + 8;
  if (least.length) {
    svg.text(8, y + 15, `${least.length} least confident`, { size: section, fill: '#444' });
    y += 22;
    drawTiles(svg, 0, y, set, least, layout, caps(least), colors(least));
  }
  return svg.toString();
}

/** `clusterGridSvg` rendered to PNG. */
export function clusterGridPng(set: ImageStack, s: ClusterSummary, opts: ClusterGridOptions = {}): Buffer {
  return svgToPng(clusterGridSvg(set, s, opts));
}
