import { DataError } from './errors.js';

/** One regular file from a tar archive. */
export interface TarEntry {
  readonly name: string;
  readonly data: Uint8Array;
}

/**
 * Lists the regular files of a (ustar / GNU / pax) tar archive held in memory.
 * Long names come from a pax extended header's `path` record (an `x` entry
 * before the file; `size` is honoured too) or a GNU `L` entry, else from the
 * header's prefix and name fields. Enough for dataset archives; links,
 * special files and pax global headers (`g`) are skipped.
 */
export function readTar(bytes: Uint8Array, file: string): TarEntry[] {
  const out: TarEntry[] = [];
  const dec = new TextDecoder();
  let off = 0;
  let longName: string | undefined;
  let pax: Map<string, string> | undefined;
  while (off + 512 <= bytes.length) {
    const h = bytes.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const field = (a: number, n: number): string => dec.decode(h.subarray(a, a + n)).replace(/\0.*$/s, '');
    checkHeaderSum(h, off, file, field(148, 8).trim());
    const sizeText = field(124, 12).trim();
    // Octal digits only: parseInt would read the prefix of a damaged field and go on at a wrong offset.
    if (!/^[0-7]*$/.test(sizeText)) throw new DataError('TAR_CORRUPT', `size field ${JSON.stringify(sizeText)} at offset ${off} is not octal`, file);
    const type = String.fromCharCode(h[156] ?? 0);
    const paxSize = pax?.get('size');
    if (paxSize !== undefined && !/^[0-9]+$/.test(paxSize))
      throw new DataError('TAR_CORRUPT', `pax size ${JSON.stringify(paxSize)} before offset ${off} is not a whole number`, file);
    const size = paxSize !== undefined ? Number(paxSize) : Number.parseInt(sizeText || '0', 8);
    const prefix = field(345, 155);
    let name = pax?.get('path') ?? longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    pax = undefined;
    const start = off + 512;
    if (start + size > bytes.length) throw new DataError('TAR_TRUNCATED', `entry ${name} is truncated`, file);
    const data = bytes.subarray(start, start + size);
    if (type === 'L') {
      longName = dec.decode(data).replace(/\0.*$/s, '');
    } else if (type === 'x') {
      pax = paxRecords(data, off, file);
    } else if (type === '0' || type === '\0') {
      name = name.replace(/^\.\//, '');
      out.push({ name, data });
    }
    off = start + Math.ceil(size / 512) * 512;
  }
  return out;
}

/**
 * A pax extended header's records: each "LEN KEY=VALUE\n", LEN counting the
 * whole record in bytes (POSIX.1-2001). Throws TAR_CORRUPT naming the offset.
 */
function paxRecords(data: Uint8Array, off: number, file: string): Map<string, string> {
  const out = new Map<string, string>();
  const dec = new TextDecoder();
  let at = 0;
  while (at < data.length && data[at] !== 0) {
    const space = data.indexOf(0x20, at);
    const lenText = space < 0 ? '' : dec.decode(data.subarray(at, space));
    const len = /^[0-9]+$/.test(lenText) ? Number(lenText) : NaN;
    if (!(len > space - at + 1) || at + len > data.length || data[at + len - 1] !== 0x0a)
      throw new DataError('TAR_CORRUPT', `pax header at offset ${off} has a malformed record at byte ${at}`, file);
    const record = dec.decode(data.subarray(space + 1, at + len - 1));
    const eq = record.indexOf('=');
    if (eq <= 0) throw new DataError('TAR_CORRUPT', `pax header at offset ${off} has a record without key=value at byte ${at}`, file);
    out.set(record.slice(0, eq), record.slice(eq + 1));
    at += len;
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
