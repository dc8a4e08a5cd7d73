import { mkdtemp, open, rm, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError } from './errors.js';

/**
 * A scratch file of fixed-size pixel records: the import's check pass
 * appends each decoded image once, the write pass reads them back by slot
 * (so no image is decoded twice, and memory stays one write buffer however
 * many images there are). The file is unlinked as soon as it is open where
 * the OS allows it (a crash leaves nothing behind) and removed on close
 * otherwise.
 */
export interface PixelSpool {
  /** The scratch file (already unlinked on POSIX). */
  readonly file: string;
  /** Bytes per record. */
  readonly recordBytes: number;
  /** Records appended so far. */
  readonly count: number;
  /** Appends one record (exactly `recordBytes`), returning its slot. */
  append(pixels: Uint8Array): Promise<number>;
  /** Reads the record in `slot` (appended and flushed: call `finish` after the last append). */
  read(slot: number): Promise<Uint8Array>;
  /** Writes out what `append` still buffers. */
  finish(): Promise<void>;
  /** Closes and removes the scratch file; idempotent. */
  close(): Promise<void>;
}

/** Appends are written in pieces of about this many bytes. */
const WRITE_BUFFER_BYTES = 1 << 20;

function spoolError(file: string, doing: string, err: unknown): DataError {
  const code = (err as NodeJS.ErrnoException).code ?? String(err);
  const hint = code === 'ENOSPC' ? ': the disk is full; free space there or set TMPDIR to a disk with room' : '';
  return new DataError('FILE_UNREADABLE', `the import's scratch file cannot be ${doing} (${code})${hint}`, file, { cause: err });
}

/**
 * Opens an empty spool of `recordBytes`-byte records in a fresh directory
 * under `dir` (default: the OS temp directory). It needs `count *
 * recordBytes` bytes of disk there.
 */
export async function openPixelSpool(recordBytes: number, dir = tmpdir()): Promise<PixelSpool> {
  if (!(Number.isInteger(recordBytes) && recordBytes > 0)) throw new RangeError(`recordBytes must be a positive integer, got ${recordBytes}`);
  let folder: string;
  try {
    folder = await mkdtemp(join(dir, 'cvc-import-'));
  } catch (err) {
    throw spoolError(join(dir, 'cvc-import-*'), 'created', err);
  }
  const file = join(folder, 'pixels');
  let fh: FileHandle;
  try {
    fh = await open(file, 'w+', 0o600);
  } catch (err) {
    await rm(folder, { recursive: true, force: true });
    throw spoolError(file, 'created', err);
  }
  // Unlinked while open: the data lives until the handle closes, even if this process dies.
  let removed = true;
  try {
    await unlink(file);
    await rmdir(folder);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Where an open file cannot be removed (Windows without delete sharing), close() removes it.
    if (code !== 'EBUSY' && code !== 'EPERM' && code !== 'EACCES' && code !== 'ENOTEMPTY') {
      await fh.close();
      await rm(folder, { recursive: true, force: true });
      throw spoolError(file, 'unlinked', err);
    }
    removed = false;
  }

  const perBuffer = Math.max(1, Math.floor(WRITE_BUFFER_BYTES / recordBytes));
  // One buffer, reused: appends are sequential (one at a time), so no flush is pending while it is refilled.
  const buffer = new Uint8Array(perBuffer * recordBytes);
  let appending = false;
  let buffered = 0;
  let flushed = 0;
  let closed: Promise<void> | undefined;
  const flush = async (): Promise<void> => {
    if (buffered === 0) return;
    const bytes = buffered * recordBytes;
    try {
      let at = 0;
      while (at < bytes) at += (await fh.write(buffer, at, bytes - at, flushed * recordBytes + at)).bytesWritten;
    } catch (err) {
      throw spoolError(file, 'written', err);
    }
    flushed += buffered;
    buffered = 0;
  };
  return {
    file,
    recordBytes,
    get count() {
      return flushed + buffered;
    },
    async append(pixels) {
      if (closed) throw new RangeError(`the spool ${file} is closed`);
      if (pixels.length !== recordBytes) throw new DataError('SHAPE_MISMATCH', `a record of ${pixels.length} bytes, the spool's have ${recordBytes}`, file);
      if (appending) throw new RangeError(`append to ${file} while another is still writing: await each append`);
      appending = true;
      try {
        buffer.set(pixels, buffered * recordBytes);
        const slot = flushed + buffered;
        buffered++;
        if (buffered === perBuffer) await flush();
        return slot;
      } finally {
        appending = false;
      }
    },
    async finish() {
      if (appending) throw new RangeError(`finish ${file} while an append is still writing: await each append`);
      await flush();
    },
    async read(slot) {
      if (closed) throw new RangeError(`the spool ${file} is closed`);
      if (!(Number.isInteger(slot) && slot >= 0 && slot < flushed))
        throw new RangeError(`slot ${slot} is not one of the ${flushed} flushed records of ${file}`);
      const out = new Uint8Array(recordBytes);
      try {
        let at = 0;
        while (at < recordBytes) {
          const { bytesRead } = await fh.read(out, at, recordBytes - at, slot * recordBytes + at);
          if (bytesRead === 0) throw new DataError('FILE_UNREADABLE', `the import's scratch file ends inside record ${slot}`, file);
          at += bytesRead;
        }
      } catch (err) {
        if (err instanceof DataError) throw err;
        throw spoolError(file, 'read', err);
      }
      return out;
    },
    close() {
      closed ??= (async () => {
        await fh.close();
        if (!removed) await rm(folder, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}
