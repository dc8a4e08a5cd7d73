import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadDataset } from '@cvc/data';

/** Fashion-MNIST's classes as folder names (its own names hold a slash). */
export const FASHION_FOLDERS = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle-boot'] as const;

/** What `writeFashionFolder` wrote. */
export interface FashionFolder {
  /** Every decodable image, relative to the folder, with its class. */
  readonly valid: ReadonlyMap<string, number>;
  /** The files no decoder reads, relative to the folder. */
  readonly bad: readonly string[];
}

/**
 * Writes real Fashion-MNIST test images (Debian's dataset-fashion-mnist)
 * into `dir` as a user's photo folder: 40x40 RGB, PNG and JPEG alternating,
 * in class folders (`perClass` each) plus a `test/` folder (`testPerClass`
 * each), and the litter of a real folder: a truncated JPEG, a zero-byte PNG
 * and a README.txt.
 */
export async function writeFashionFolder(dir: string, cacheDir: string, perClass = 30, testPerClass = 10): Promise<FashionFolder> {
  const { test } = await loadDataset('fashion-mnist', { cacheDir });
  const taken = new Array<number>(10).fill(0);
  const valid = new Map<string, number>();
  const px = 28 * 28;
  let aJpeg: Buffer | undefined;
  for (let i = 0; i < test.count && valid.size < 10 * (perClass + testPerClass); i++) {
    const label = test.labels[i] as number;
    const n = taken[label] as number;
    if (n >= perClass + testPerClass) continue;
    taken[label] = n + 1;
    const grey = test.images.subarray(i * px, (i + 1) * px);
    const rgb = new Uint8Array(px * 3);
    for (let p = 0; p < px; p++) rgb.fill(grey[p] as number, p * 3, p * 3 + 3);
    const img = sharp(rgb, { raw: { width: 28, height: 28, channels: 3 } }).resize(40, 40);
    const jpeg = n % 2 === 1;
    const folder = n < perClass ? (FASHION_FOLDERS[label] as string) : join('test', FASHION_FOLDERS[label] as string);
    const rel = join(folder, `${String(i).padStart(5, '0')}.${jpeg ? 'jpg' : 'png'}`);
    await mkdir(join(dir, folder), { recursive: true });
    const bytes = jpeg ? await img.jpeg({ quality: 90 }).toBuffer() : await img.png().toBuffer();
    if (jpeg) aJpeg = bytes;
    await writeFile(join(dir, rel), bytes);
    valid.set(rel, label);
  }
  // A JPEG cut off halfway, a zero-byte PNG, a text file.
  if (aJpeg === undefined) throw new Error('no JPEG written: perClass must be at least 2');
  await writeFile(join(dir, 'shirt', 'broken.jpg'), aJpeg.subarray(0, aJpeg.length >> 1));
  await writeFile(join(dir, 'bag', 'empty.png'), new Uint8Array(0));
  await writeFile(join(dir, 'README.txt'), 'Fashion-MNIST test images, 40x40 RGB, one folder per class.\n');
  return { valid, bad: ['bag/empty.png', 'shirt/broken.jpg'] };
}
