import { access } from 'node:fs/promises';

/** True when a file-system call failed because the path (or a directory on it) does not exist. */
export function isFileNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * True when `path` exists (any type), false when it does not; any other
 * failure (permission denied, an I/O error) is thrown, not read as "absent".
 */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch (err) {
    if (isFileNotFound(err)) return false;
    throw err;
  }
}
