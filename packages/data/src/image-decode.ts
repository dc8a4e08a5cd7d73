import { readFile } from 'node:fs/promises';
import type Sharp from 'sharp';
import { DataError, type DataErrorCode } from './errors.js';

/** How an image is fitted to the target size: crop to fill, letterbox (black bars), or stretch. */
export type ImageFit = 'cover' | 'contain' | 'fill';
export const IMAGE_FITS: readonly ImageFit[] = ['cover', 'contain', 'fill'];

/** The target of a decode: every image becomes `height x width x channels` uint8, HWC order. */
export interface DecodeOptions {
  readonly height: number;
  readonly width: number;
  /** 1: greyscale (luminance), 3: sRGB. Alpha is flattened onto black. */
  readonly channels: 1 | 3;
  /** Default `cover`. */
  readonly fit?: ImageFit;
}

/** An image's own size and channel count, read from its header. */
export interface ImageInfo {
  readonly height: number;
  readonly width: number;
  /** Colour channels without alpha: 1 for greyscale images, 3 otherwise. */
  readonly channels: 1 | 3;
  readonly format: string;
}

let loaded: Promise<typeof Sharp> | undefined;

/**
 * sharp, loaded on first use: only the commands that read image files need
 * its native libvips binaries (optional npm dependencies of sharp, left out
 * by `npm install --omit=optional`), so everything else runs without them.
 * Throws DataError IMAGE_DECODER_MISSING saying how to install them.
 */
export function loadSharp(): Promise<typeof Sharp> {
  loaded ??= import('sharp').then(
    (m) => {
      // libvips keeps no cache between files: memory stays bounded by the decodes in flight.
      m.default.cache(false);
      return m.default;
    },
    (err: unknown) => {
      loaded = undefined;
      throw new DataError(
        'IMAGE_DECODER_MISSING',
        `the image decoder (sharp and its libvips binaries) cannot be loaded: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}; install it with: npm install --include=optional sharp`,
        undefined,
        { cause: err },
      );
    },
  );
  return loaded;
}

/** The error code for a libvips failure message. */
function classify(message: string): DataErrorCode {
  const m = message.toLowerCase();
  if (m.includes('empty')) return 'IMAGE_EMPTY';
  if (m.includes('unsupported image format')) return 'NOT_AN_IMAGE';
  if (m.includes('premature end') || m.includes('end of stream') || m.includes('truncated') || m.includes('not enough data') || m.includes('unexpected end'))
    return 'IMAGE_TRUNCATED';
  return 'IMAGE_UNDECODABLE';
}

const REASONS: Partial<Record<DataErrorCode, string>> = {
  IMAGE_EMPTY: 'is an empty (zero-byte) file',
  NOT_AN_IMAGE: 'is not an image (unknown format)',
  IMAGE_TRUNCATED: 'is truncated',
  IMAGE_UNDECODABLE: 'cannot be decoded',
};

/**
 * Whether a JPEG or PNG file stops before its end marker (EOI, IEND). libvips
 * reports a cut-off file in different words depending on where it is cut
 * (sometimes only as "warning treated as error"), so a failed decode is
 * checked against the bytes too.
 */
function cutShort(bytes: Uint8Array): boolean {
  const tail = bytes.subarray(Math.max(0, bytes.length - 64));
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    for (let i = tail.length - 2; i >= 0; i--) if (tail[i] === 0xff && tail[i + 1] === 0xd9) return false;
    return true;
  }
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return !Buffer.from(tail).includes('IEND');
  return false;
}

function decodeError(err: unknown, name: string, bytes: Uint8Array): DataError {
  const message = err instanceof Error ? err.message : String(err);
  const classified = classify(message);
  // The bytes decide first: libvips words the same cut-off file differently from run to run (where its reader stopped).
  const code = classified !== 'IMAGE_EMPTY' && cutShort(bytes) ? 'IMAGE_TRUNCATED' : classified;
  return new DataError(code, `${REASONS[code] ?? 'cannot be decoded'} (${message})`, name, { cause: err });
}

async function readImageFile(file: string, name: string): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new DataError('SYMLINK_LOOP', 'is a symbolic link loop', name, { cause: err });
    if (code === 'ENOENT') throw new DataError('FILE_MISSING', 'does not exist (or is a broken symbolic link)', name, { cause: err });
    throw new DataError('FILE_UNREADABLE', `cannot be read (${code ?? String(err)})`, name, { cause: err });
  }
  if (bytes.length === 0) throw new DataError('IMAGE_EMPTY', 'is an empty (zero-byte) file', name);
  return bytes;
}

/**
 * Reads an image's size and channels from its header (no full decode; a
 * truncated file may still pass here, `decodeImage` catches it).
 * `name` is how errors name the file (default: `file`).
 */
export async function probeImage(file: string, name = file): Promise<ImageInfo> {
  return probeImageBytes(await readImageFile(file, name), name);
}

/** `probeImage` of bytes already in memory. */
async function probeImageBytes(bytes: Buffer, name: string): Promise<ImageInfo> {
  const sharp = await loadSharp();
  try {
    const m = await sharp(bytes, { failOn: 'warning' }).metadata();
    if (!m.width || !m.height) throw new Error('no image size in the header');
    // EXIF orientations 5..8 swap width and height once the image is rotated upright.
    const swap = (m.orientation ?? 1) >= 5;
    return {
      height: swap ? m.width : m.height,
      width: swap ? m.height : m.width,
      channels: m.channels !== undefined && m.channels <= 2 ? 1 : 3,
      format: m.format ?? 'unknown',
    };
  } catch (err) {
    throw decodeError(err, name, bytes);
  }
}

/**
 * Decodes an image file (PNG, JPEG, WebP, TIFF, AVIF, the first frame of a
 * GIF) into `height * width * channels` uint8 pixels in HWC order: rotated
 * upright by its EXIF orientation, alpha flattened onto black, converted to
 * greyscale or sRGB and resized by `fit`. Errors are DataErrors naming the
 * file (`name`, default `file`): IMAGE_EMPTY, IMAGE_TRUNCATED, NOT_AN_IMAGE,
 * IMAGE_UNDECODABLE, SYMLINK_LOOP, FILE_MISSING, FILE_UNREADABLE.
 */
export async function decodeImage(file: string, opts: DecodeOptions, name = file): Promise<Uint8Array> {
  return decodeImageBytes(await readImageFile(file, name), opts, name);
}

/**
 * `decodeImage`, and the file's own upright size and channels from its
 * header (`probeImage`), read from one read of the file: the import checks
 * with it that images it sizes by the first one all have that size.
 */
export async function decodeImageWithInfo(file: string, opts: DecodeOptions, name = file): Promise<{ pixels: Uint8Array; info: ImageInfo }> {
  const bytes = await readImageFile(file, name);
  const info = await probeImageBytes(bytes, name);
  return { pixels: await decodeImageBytes(bytes, opts, name), info };
}

/** `decodeImage` for bytes already in memory; `name` names the image in errors. */
export async function decodeImageBytes(bytes: Uint8Array, opts: DecodeOptions, name: string): Promise<Uint8Array> {
  if (bytes.length === 0) throw new DataError('IMAGE_EMPTY', 'is an empty (zero-byte) file', name);
  const sharp = await loadSharp();
  let out: { data: Buffer; info: Sharp.OutputInfo };
  try {
    let img = sharp(bytes, { failOn: 'warning', pages: 1 })
      .rotate()
      .flatten({ background: '#000000' })
      .resize(opts.width, opts.height, { fit: opts.fit ?? 'cover', position: 'centre', background: '#000000' });
    img = opts.channels === 1 ? img.toColourspace('b-w') : img.toColourspace('srgb');
    out = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw decodeError(err, name, bytes);
  }
  const { data, info } = out;
  if (info.width !== opts.width || info.height !== opts.height || info.channels !== opts.channels || data.length !== opts.height * opts.width * opts.channels) {
    throw new DataError(
      'IMAGE_UNDECODABLE',
      `decoded to ${info.height}x${info.width}x${info.channels}, expected ${opts.height}x${opts.width}x${opts.channels}`,
      name,
    );
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
