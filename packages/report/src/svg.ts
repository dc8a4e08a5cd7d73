import { escapeXml, FONT_FAMILY } from './render.js';

/** A colour as [r, g, b], 0-255. */
export type Rgb = readonly [number, number, number];

/** `c` as a CSS colour. */
export const css = (c: Rgb): string => `rgb(${c[0]},${c[1]},${c[2]})`;

const n = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(2));

/** How a piece of text is set: size in pixels (default 13), anchor (default start), weight, colour (default near black). */
export interface TextStyle {
  readonly size?: number;
  readonly anchor?: 'start' | 'middle' | 'end';
  readonly bold?: boolean;
  readonly fill?: string;
  /** Degrees, about the text's anchor point (e.g. -90 for a vertical axis title). */
  readonly rotate?: number;
}

/**
 * An SVG document built element by element; `toString()` gives the document,
 * white background, text in the packaged font.
 */
export class Svg {
  private readonly parts: string[] = [];

  constructor(
    readonly width: number,
    readonly height: number,
  ) {}

  /** Text whose baseline starts (or is centred / ends, per `anchor`) at (x, y). */
  text(x: number, y: number, s: string, style: TextStyle = {}): this {
    const attrs = [
      `x="${n(x)}"`,
      `y="${n(y)}"`,
      `font-size="${style.size ?? 13}"`,
      style.anchor && style.anchor !== 'start' ? `text-anchor="${style.anchor}"` : '',
      style.bold ? 'font-weight="bold"' : '',
      `fill="${style.fill ?? '#222'}"`,
      style.rotate ? `transform="rotate(${style.rotate} ${n(x)} ${n(y)})"` : '',
    ];
    this.parts.push(`<text ${attrs.filter(Boolean).join(' ')}>${escapeXml(s)}</text>`);
    return this;
  }

  rect(x: number, y: number, w: number, h: number, fill: string, stroke?: string): this {
    const s = stroke ? ` stroke="${stroke}"` : '';
    this.parts.push(`<rect x="${n(x)}" y="${n(y)}" width="${n(w)}" height="${n(h)}" fill="${fill}"${s}/>`);
    return this;
  }

  /** A straight line; `dash` draws on/off segments of that many pixels. */
  line(x0: number, y0: number, x1: number, y1: number, stroke: string, width = 1, dash = 0): this {
    const d = dash > 0 ? ` stroke-dasharray="${dash} ${dash}"` : '';
    this.parts.push(`<line x1="${n(x0)}" y1="${n(y0)}" x2="${n(x1)}" y2="${n(y1)}" stroke="${stroke}" stroke-width="${width}"${d}/>`);
    return this;
  }

  /** A polyline through `points` ([x, y] pairs). */
  polyline(points: readonly (readonly [number, number])[], stroke: string, width = 2, dash = 0): this {
    const d = dash > 0 ? ` stroke-dasharray="${dash} ${dash}"` : '';
    const pts = points.map(([x, y]) => `${n(x)},${n(y)}`).join(' ');
    this.parts.push(`<polyline points="${pts}" fill="none" stroke="${stroke}" stroke-width="${width}" stroke-linejoin="round"${d}/>`);
    return this;
  }

  circle(x: number, y: number, r: number, fill: string, opacity = 1): this {
    const o = opacity < 1 ? ` fill-opacity="${opacity}"` : '';
    this.parts.push(`<circle cx="${n(x)}" cy="${n(y)}" r="${r}" fill="${fill}"${o}/>`);
    return this;
  }

  /** A PNG drawn at (x, y) with its own pixel size `w` x `h`. */
  png(x: number, y: number, w: number, h: number, png: Buffer): this {
    this.parts.push(`<image x="${n(x)}" y="${n(y)}" width="${w}" height="${h}" href="data:image/png;base64,${png.toString('base64')}"/>`);
    return this;
  }

  toString(): string {
    return (
      `<svg xmlns="http://www.w3.org/2000/svg" width="${this.width}" height="${this.height}" viewBox="0 0 ${this.width} ${this.height}" ` +
      `font-family="${FONT_FAMILY}">\n<rect width="100%" height="100%" fill="white"/>\n${this.parts.join('\n')}\n</svg>\n`
    );
  }
}
