import { svgToPng } from './render.js';
import { fitText } from './fit-text.js';
import { Svg } from './svg.js';
import { tileSheet, tileSheetSize, type ImageStack, type TileLayout } from './tiles.js';

/** How `imageGrid` lays images out; defaults 5 x 5, 3x scale, no title, no captions. */
export interface GridOptions {
  readonly rows?: number;
  readonly cols?: number;
  /** Nearest-neighbour upscaling of each image (default 3). */
  readonly scale?: number;
  /** A title above the grid. */
  readonly title?: string;
  /** One caption per image, set under it (cut with an ellipsis to the tile's width). */
  readonly captions?: readonly string[];
  /** The colour of each caption (CSS), default near black. */
  readonly captionColors?: readonly string[];
}

/** Pixel heights of the bands around tiles. */
export const TITLE_BAND = 30;
export const CAPTION_BAND = 15;
/** Caption font size for a tile `tileWidth` pixels wide. */
export const captionSize = (tileWidth: number): number => Math.max(9, Math.min(12, Math.floor(tileWidth / 7)));

/** The height `drawTiles` uses for `count` tiles; with captions each row of tiles has a caption band under it. */
export function tilesHeight(set: Pick<ImageStack, 'height' | 'width'>, count: number, layout: TileLayout, captioned: boolean): number {
  if (!captioned) return tileSheetSize(set, count, layout).height;
  const rows = Math.max(1, Math.ceil(count / layout.cols));
  return rows * (tileSheetSize(set, 1, layout).height + CAPTION_BAND);
}

/**
 * Draws tiles (the images at `indices`) at (x, y) into `svg`, with a caption
 * under each image where `captions` is given; returns the height used
 * (`tilesHeight`).
 */
export function drawTiles(
  svg: Svg,
  x: number,
  y: number,
  set: ImageStack,
  indices: readonly number[],
  layout: TileLayout,
  captions?: readonly string[],
  captionColors?: readonly string[],
): number {
  if (!captions) {
    const size = tileSheetSize(set, indices.length, layout);
    if (indices.length) svg.png(x, y, size.width, size.height, tileSheet(set, indices, layout));
    return size.height;
  }
  const tileW = set.width * layout.scale;
  const fs = captionSize(tileW);
  let used = 0;
  for (let r = 0; r * layout.cols < indices.length; r++) {
    const row = indices.slice(r * layout.cols, (r + 1) * layout.cols);
    const size = tileSheetSize(set, row.length, layout);
    svg.png(x, y + used, size.width, size.height, tileSheet(set, row, layout));
    used += size.height;
    row.forEach((_, j) => {
      const i = r * layout.cols + j;
      const cx = x + layout.gap + j * (tileW + layout.gap) + tileW / 2;
      svg.text(cx, y + used + fs - 2, fitText(captions[i] ?? '', tileW + layout.gap, fs), { size: fs, anchor: 'middle', fill: captionColors?.[i] ?? '#222' });
    });
    used += CAPTION_BAND;
  }
  return Math.max(used, tilesHeight(set, indices.length, layout, true));
}

/** The SVG of `imageGrid`: a rows x cols grid, optional title above and captions under each image. */
export function imageGridSvg(set: ImageStack, opts: GridOptions = {}): string {
  const rows = opts.rows ?? 5;
  const cols = opts.cols ?? 5;
  const layout: TileLayout = { cols, scale: opts.scale ?? 3, gap: 2 };
  const indices = Array.from({ length: Math.min(set.count, rows * cols) }, (_, i) => i);
  const size = tileSheetSize(set, rows * cols, layout);
  const top = opts.title ? TITLE_BAND : 0;
  const svg = new Svg(size.width, top + tilesHeight(set, rows * cols, layout, opts.captions !== undefined));
  if (opts.title) svg.text(layout.gap + 2, 20, fitText(opts.title, size.width - 8, 15, true), { size: 15, bold: true });
  drawTiles(svg, 0, top, set, indices, layout, opts.captions, opts.captionColors);
  return svg.toString();
}

/**
 * A rows x cols grid of images (HWC, values in [0, 1] or uint8) as a PNG, each
 * scaled up `scale` times with a 2-pixel white gutter, like the seed's
 * figures; with a title and a caption per image where given.
 */
export function imageGrid(images: Float32Array | Uint8Array, count: number, h: number, w: number, channels: number, opts: GridOptions = {}): Buffer {
  return svgToPng(imageGridSvg({ images, count, height: h, width: w, channels }, opts));
}
