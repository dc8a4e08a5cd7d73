import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { ImageSet } from './image-set.js';
import { mapOrdered } from './ordered-map.js';

/** How `writeImageTree` lays the images out. */
export interface ImageTreeOptions {
  /** Size of the written files (each image is resized to it). */
  readonly height: number;
  readonly width: number;
  /** 3 writes RGB files (the grey value in each channel), 1 greyscale files. */
  readonly channels: 1 | 3;
  /** `png`, `jpeg`, or `mixed` (even indices PNG, odd JPEG). Default `mixed`. */
  readonly format?: 'png' | 'jpeg' | 'mixed';
  /** Folder names of the labels: `DIR/<class>/<i>.png`; absent: a flat folder `DIR/<i>.png`. */
  readonly classNames?: readonly string[];
  /** Files written at once (default 4). */
  readonly concurrency?: number;
}

/**
 * Writes the images of `set` (its first `count`) as image files under `dir`
 * (test fixtures and benchmarks): class subfolders named by `classNames`, or
 * flat. Returns each file's path relative to `dir`, in image order.
 */
export async function writeImageTree(dir: string, set: ImageSet, count: number, opts: ImageTreeOptions): Promise<string[]> {
  const n = Math.min(count, set.count);
  const per = set.height * set.width * set.channels;
  const paths: string[] = [];
  const made = new Set<string>();
  for (let i = 0; i < n; i++) {
    const cls = opts.classNames ? (opts.classNames[set.labels[i] as number] ?? String(set.labels[i])) : undefined;
    const fmt = opts.format === 'png' || (opts.format !== 'jpeg' && i % 2 === 0) ? 'png' : 'jpg';
    const name = `${String(i).padStart(6, '0')}.${fmt}`;
    paths.push(cls === undefined ? name : `${cls}/${name}`);
    const sub = cls === undefined ? dir : join(dir, cls);
    if (!made.has(sub)) {
      await mkdir(sub, { recursive: true });
      made.add(sub);
    }
  }
  const written = mapOrdered(paths.keys(), opts.concurrency ?? 4, async (i) => {
    const px = Buffer.from(set.images.subarray(i * per, (i + 1) * per));
    let img = sharp(px, { raw: { height: set.height, width: set.width, channels: set.channels as 1 | 3 | 4 } }).resize(opts.width, opts.height, {
      fit: 'fill',
    });
    img = opts.channels === 3 ? img.toColourspace('srgb') : img.toColourspace('b-w');
    const file = join(dir, paths[i] as string);
    await (file.endsWith('.png') ? img.png() : img.jpeg({ quality: 90 })).toFile(file);
  });
  for await (const _ of written) void _;
  return paths;
}
