import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { DataError } from './errors.js';

/** One parsed IDX file: unsigned bytes with its dimensions. */
export interface IdxArray {
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

const typeNames: Record<number, string> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'short',
  0x0c: 'int',
  0x0d: 'float',
  0x0e: 'double',
};

/**
 * The most a gzipped dataset file may inflate to (2 GiB - 1: the largest file
 * cvc reads whole). A file that inflates past it (a gzip bomb, or a dataset
 * too big to hold in memory) is refused before it exhausts memory.
 */
export const MAX_GUNZIPPED_BYTES = 2 ** 31 - 1;

/** Returns the bytes, gunzipped when they start with the gzip magic; GZIP_TOO_LARGE past `maxBytes` inflated. */
export function maybeGunzip(bytes: Uint8Array, file: string, maxBytes = MAX_GUNZIPPED_BYTES): Uint8Array {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      return new Uint8Array(gunzipSync(bytes, { maxOutputLength: maxBytes }));
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE')
        throw new DataError(
          'GZIP_TOO_LARGE',
          `${bytes.length} gzipped bytes inflate to more than ${maxBytes} bytes, the most cvc reads from one file: split the dataset, or import it as an image folder`,
          file,
          { cause: err },
        );
      throw new DataError('GZIP_CORRUPT', `gzip data is corrupt or truncated (${(err as Error).message})`, file, { cause: err });
    }
  }
  return bytes;
}

/**
 * Parses an IDX file (raw or gzipped). Only unsigned-byte payloads are
 * accepted: every image dataset cvc reads uses them.
 * @param expectedDims the number of dimensions the caller needs (1 labels, 3 images)
 */
export function parseIdx(raw: Uint8Array, file: string, expectedDims: number): IdxArray {
  const bytes = maybeGunzip(raw, file);
  if (bytes.length < 4) throw new DataError('IDX_TRUNCATED', `too short for an IDX header (${bytes.length} bytes)`, file);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DataError('IDX_BAD_MAGIC', `not an IDX file: magic starts 0x${hex(bytes[0])}${hex(bytes[1])}, expected 0x0000`, file);
  }
  const type = bytes[2] as number;
  const ndim = bytes[3] as number;
  if (type !== 0x08) {
    const name = typeNames[type] ?? `unknown type 0x${hex(type)}`;
    throw new DataError('IDX_BAD_TYPE', `element type is ${name}; cvc reads unsigned-byte IDX files only`, file);
  }
  if (ndim !== expectedDims) {
    throw new DataError('IDX_BAD_DIMS', `has ${ndim} dimensions, expected ${expectedDims}`, file);
  }
  const headerLen = 4 + 4 * ndim;
  if (bytes.length < headerLen) throw new DataError('IDX_TRUNCATED', `header truncated (${bytes.length} of ${headerLen} bytes)`, file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const payload = dims.reduce((a, b) => a * b, 1);
  if (dims.some((d) => d === 0)) throw new DataError('IDX_BAD_DIMS', `has a zero dimension (${dims.join('x')})`, file);
  const actual = bytes.length - headerLen;
  if (actual < payload) {
    throw new DataError('IDX_TRUNCATED', `truncated: dimensions ${dims.join('x')} need ${payload} payload bytes, found ${actual}`, file);
  }
  if (actual > payload) {
    throw new DataError('IDX_TRAILING', `has ${actual - payload} bytes after the ${dims.join('x')} payload`, file);
  }
  return { dims, data: bytes.subarray(headerLen) };
}

/** Reads and parses an IDX file from disk. */
export async function readIdxFile(file: string, expectedDims: number): Promise<IdxArray> {
  let raw: Uint8Array;
  try {
    raw = await readFile(file);
  } catch (err) {
    throw new DataError('FILE_UNREADABLE', `cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, file, { cause: err });
  }
  return parseIdx(raw, file, expectedDims);
}

function hex(b: number | undefined): string {
  return (b ?? 0).toString(16).padStart(2, '0');
}
