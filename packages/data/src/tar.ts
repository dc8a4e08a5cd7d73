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
    checkHeaderSum(h, off, file, field(148, 8).trim());
    const sizeText = field(124, 12).trim();
    // Octal digits only: parseInt would read the prefix of a damaged field and go on at a wrong offset.
    if (!/^[0-7]*$/.test(sizeText)) throw new DataError('TAR_CORRUPT', `size field ${JSON.stringify(sizeText)} at offset ${off} is not octal`, file);
    const size = Number.parseInt(sizeText || '0', 8);
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

/**
 * Checks a header block's checksum: the sum of its bytes with the checksum
 * field read as spaces (unsigned, or signed as some old tars wrote it).
 */
function checkHeaderSum(h: Uint8Array, off: number, file: string, recordedText: string): void {
  if (!/^[0-7]+$/.test(recordedText))
    throw new DataError('TAR_CORRUPT', `header checksum field ${JSON.stringify(recordedText)} at offset ${off} is not octal`, file);
  const recorded = Number.parseInt(recordedText, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (h[i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  if (recorded !== unsigned && recorded !== signed)
    throw new DataError('TAR_CORRUPT', `header checksum mismatch at offset ${off} (recorded ${recorded}, computed ${unsigned}): the archive is damaged`, file);
}
