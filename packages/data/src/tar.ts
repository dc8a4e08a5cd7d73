import { DataError } from './errors.js';

/** One regular file from a tar archive. */
export interface TarEntry {
  readonly name: string;
  readonly data: Uint8Array;
}

/**
 * Lists the regular files of a (ustar / GNU) tar archive held in memory.
 * Enough for dataset archives; links and special files are skipped.
 */
export function readTar(bytes: Uint8Array, file: string): TarEntry[] {
  const out: TarEntry[] = [];
  const dec = new TextDecoder();
  let off = 0;
  let longName: string | undefined;
  while (off + 512 <= bytes.length) {
    const h = bytes.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const field = (a: number, n: number): string => dec.decode(h.subarray(a, a + n)).replace(/\0.*$/s, '');
    const sizeText = field(124, 12).trim();
    const size = Number.parseInt(sizeText || '0', 8);
    if (!Number.isFinite(size) || size < 0) throw new DataError('TAR_CORRUPT', `bad size field at offset ${off}`, file);
    const type = String.fromCharCode(h[156] ?? 0);
    const prefix = field(345, 155);
    let name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    const start = off + 512;
    if (start + size > bytes.length) throw new DataError('TAR_TRUNCATED', `entry ${name} is truncated`, file);
    const data = bytes.subarray(start, start + size);
    if (type === 'L') {
      longName = dec.decode(data).replace(/\0.*$/s, '');
    } else if (type === '0' || type === '\0') {
      name = name.replace(/^\.\//, '');
      out.push({ name, data });
    }
    off = start + Math.ceil(size / 512) * 512;
  }
  return out;
}
