import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UsageError } from './errors.js';

/**
 * Checks, before any long work, that the directory `file` goes into exists
 * (`cvc embed --out nodir/codes.npy` would otherwise embed every image and
 * then fail to write them): a UsageError naming the flag otherwise.
 */
export async function requireParentDir(file: string, flag: string): Promise<void> {
  const dir = dirname(file);
  let isDir: boolean;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    throw new UsageError(`${flag} ${file}: the directory ${dir} does not exist (create it first)`);
  }
  if (!isDir) throw new UsageError(`${flag} ${file}: ${dir} is not a directory`);
}
