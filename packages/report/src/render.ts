import { createRequire } from 'node:module';
import { Resvg, type ResvgRenderOptions } from '@resvg/resvg-js';
import { describeError } from '@cvc/core';
import { ReportError } from './errors.js';

const require = createRequire(import.meta.url);

/** The family every chart's text is set in (DejaVu Sans, from the dejavu-fonts-ttf package). */
export const FONT_FAMILY = 'DejaVu Sans';

const FONT_FILES = ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf'].map((f) => require.resolve(`dejavu-fonts-ttf/ttf/${f}`));

// Only the packaged font, never the machine's: the same picture everywhere, even where no fonts are installed.
const OPTIONS: ResvgRenderOptions = {
  font: { loadSystemFonts: false, fontFiles: FONT_FILES, defaultFontFamily: FONT_FAMILY, sansSerifFamily: FONT_FAMILY },
  imageRendering: 1,
  logLevel: 'off',
};

/** Renders an SVG document (as the chart functions here write it) to PNG bytes at its own size. */
export function svgToPng(svg: string): Buffer {
  try {
    return new Resvg(svg, OPTIONS).render().asPng();
  } catch (err) {
    throw new ReportError('RENDER_FAILED', `the SVG chart could not be rendered: ${describeError(err)}`, { cause: err });
  }
}

const widths = new Map<string, number>();

/**
 * The width in pixels of `text` set in the charts' font at `size` pixels
 * (`bold` for the bold face), measured by the same renderer that draws it.
 */
export function textWidth(text: string, size: number, bold = false): number {
  if (text.trim() === '') return text.length * size * 0.32;
  const key = `${bold ? 'b' : 'r'}${size}:${text}`;
  let w = widths.get(key);
  if (w === undefined) {
    const weight = bold ? ' font-weight="bold"' : '';
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text x="0" y="${size}" font-size="${size}"${weight}>${escapeXml(text)}</text></svg>`;
    const box = new Resvg(svg, OPTIONS).getBBox();
    w = box ? box.x + box.width : 0;
    widths.set(key, w);
  }
  return w;
}

/** `s` with the five XML special characters escaped, for text and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string);
}
