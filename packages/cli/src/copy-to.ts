import { constants } from 'node:fs';
import { copyFile, link, lstat, mkdir, readdir, readFile, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { describeError, isFileNotFound, throwIfAborted } from '@cvc/core';
import { OutputError } from './errors.js';

/** The file in a `--copy-to` folder that lists what cvc wrote there (so `--force` replaces only its own files). */
export const COPY_MARKER = '.cvc-clusters.json';

/** One image to place in its cluster's folder. */
export interface PlacedImage {
  readonly cluster: number;
  /** Where it goes inside `cluster-NN/` (a relative path, e.g. `shirt/0001.png`). */
  readonly dest: string;
  /** The user's file, hard-linked or copied; without it `png()` is written. */
  readonly file?: string;
  /** The image encoded as PNG (records of an imported dataset with no source file). */
  readonly png?: () => Uint8Array;
}

export interface CopyToOptions {
  /** Write into a non-empty target; files cvc wrote there before are replaced, any other existing file is still never overwritten. */
  readonly force?: boolean;
  /** The image folder: a target inside it is refused (a later listing would pick the copies up). */
  readonly sourceRoot?: string;
  /** Checked before each image: an abort stops the placing (the marker then lists what was placed). */
  readonly signal?: AbortSignal;
  /** Called after each image (progress). */
  readonly onImage?: (done: number, total: number) => void;
}

export interface CopyToResult {
  readonly linked: number;
  readonly copied: number;
  /** Records with no source file, written as PNG. */
  readonly written: number;
  /** The cluster folders, in cluster order. */
  readonly folders: readonly string[];
}

/** The folder of cluster `c` among `k`: cluster-00, cluster-01, ... (wider for k > 100). */
export function clusterFolder(c: number, k: number): string {
  return `cluster-${String(c).padStart(Math.max(2, String(k - 1).length), '0')}`;
}

/** A relative path that stays below its folder, normalised; else an OutputError naming it. */
function safeRelative(p: string): string {
  const n = normalize(p);
  if (p === '' || isAbsolute(n) || n === '..' || n.startsWith(`..${sep}`) || n.split(sep).includes('..'))
    throw new OutputError('BAD_PATH', `${p}: not a relative path inside the target folder`);
  return n;
}

const isInside = (child: string, parent: string): boolean => {
  const r = relative(parent, child);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

async function entriesOf(dir: string): Promise<string[] | undefined> {
  try {
    if (!(await lstat(dir)).isDirectory()) throw new OutputError('TARGET_NOT_DIRECTORY', `${dir} exists and is not a directory`);
    return await readdir(dir);
  } catch (err) {
    if (isFileNotFound(err)) return undefined;
    throw err;
  }
}

async function previousFiles(target: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(join(target, COPY_MARKER), 'utf8');
  } catch (err) {
    if (isFileNotFound(err)) return [];
    throw err;
  }
  try {
    const files = (JSON.parse(text) as { files?: unknown }).files;
    return Array.isArray(files) ? files.filter((f): f is string => typeof f === 'string').map(safeRelative) : [];
  } catch (err) {
    throw new OutputError('TARGET_NOT_EMPTY', `${join(target, COPY_MARKER)} cannot be read (${describeError(err)}); choose an empty --copy-to folder`, {
      cause: err,
    });
  }
}

const exists = async (p: string): Promise<boolean> => {
  try {
    await lstat(p);
    return true;
  } catch (err) {
    if (isFileNotFound(err)) return false;
    throw err;
  }
};

/** Replaces ROOT's marker (atomically: a temp file renamed over it) with `files`. */
async function writeMarker(root: string, k: number, files: readonly string[]): Promise<void> {
  const tmp = join(root, `${COPY_MARKER}.tmp`);
  await writeFile(tmp, JSON.stringify({ format: 'cvc-clusters', k, files }, null, 1) + '\n');
  await rename(tmp, join(root, COPY_MARKER));
}

/** Hard-links `src` to `dest`, or copies it where a link cannot be made; never replaces `dest`. */
async function linkOrCopy(src: string, dest: string): Promise<'linked' | 'copied'> {
  try {
    await link(src, dest);
    return 'linked';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP' && code !== 'EACCES' && code !== 'ENOSYS') throw err;
  }
  await copyFile(src, dest, constants.COPYFILE_EXCL);
  return 'copied';
}

/**
 * Arranges images into one folder per cluster under `target`
 * (`cluster-00/shirt/0001.png`, ...): hard links where the file system
 * allows, copies elsewhere. Nothing is moved, and no existing file is ever
 * overwritten: a non-empty target is refused unless `force`, and then only
 * the files a previous run listed in `.cvc-clusters.json` are replaced. Every
 * destination is checked before anything is written, and the marker lists
 * every file about to be placed before the first one is, so even a run killed
 * midway (a second Ctrl-C) leaves only files a later `--force` may replace;
 * at the end (or on an abort through `opts.signal`) it is rewritten with what
 * was placed.
 */
export async function copyToClusters(images: readonly PlacedImage[], k: number, target: string, opts: CopyToOptions = {}): Promise<CopyToResult> {
  const root = resolve(target);
  if (opts.sourceRoot !== undefined && isInside(root, resolve(opts.sourceRoot)))
    throw new OutputError('TARGET_INSIDE_SOURCE', `--copy-to ${target} lies inside the image folder ${opts.sourceRoot}; choose a folder outside it`);
  const entries = await entriesOf(root);
  if (entries !== undefined && entries.length > 0 && !opts.force)
    throw new OutputError(
      'TARGET_NOT_EMPTY',
      `--copy-to ${target} is not empty; choose an empty folder, or pass --force to add to it (existing files are never overwritten)`,
    );
  const previous = entries !== undefined && entries.length > 0 ? await previousFiles(root) : [];
  const ours = new Set(previous);
  const planned = images.map((im) => join(clusterFolder(im.cluster, k), safeRelative(im.dest)));
  const seen = new Set<string>();
  for (const rel of planned) {
    if (seen.has(rel)) throw new OutputError('DEST_EXISTS', `two images would both go to ${join(target, rel)}`);
    seen.add(rel);
    if (!ours.has(rel) && (await exists(join(root, rel))))
      throw new OutputError(
        'DEST_EXISTS',
        `${join(target, rel)} exists and was not written by cvc; it is never overwritten (choose an empty --copy-to folder)`,
      );
  }
  throwIfAborted(opts.signal, `--copy-to ${target}`);
  await mkdir(root, { recursive: true });
  // Before anything changes: the marker claims the files of the run before and all those about to be placed.
  await writeMarker(root, k, [...new Set([...previous, ...planned])]);
  // Our own files from the run before: removed, with the folders they leave empty.
  for (const rel of previous) {
    try {
      await unlink(join(root, rel));
    } catch (err) {
      if (!isFileNotFound(err)) throw err;
    }
    for (let d = dirname(rel); d !== '.'; d = dirname(d)) {
      try {
        await rmdir(join(root, d));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOTEMPTY' || code === 'EEXIST' || isFileNotFound(err)) break;
        throw err;
      }
    }
  }
  let linked = 0;
  let copied = 0;
  let written = 0;
  const done: string[] = [];
  try {
    for (let i = 0; i < images.length; i++) {
      throwIfAborted(opts.signal, `--copy-to ${target}`);
      const im = images[i] as PlacedImage;
      const dest = join(root, planned[i] as string);
      await mkdir(dirname(dest), { recursive: true });
      if (im.file !== undefined) {
        if ((await linkOrCopy(im.file, dest)) === 'linked') linked++;
        else copied++;
      } else if (im.png !== undefined) {
        await writeFile(dest, im.png(), { flag: 'wx' });
        written++;
      } else throw new RangeError(`image for ${im.dest} has neither a file nor pixels`);
      done.push(planned[i] as string);
      opts.onImage?.(i + 1, images.length);
    }
  } finally {
    // What was written is listed even after a failure, so --force can clean it up.
    await writeMarker(root, k, done);
  }
  const folders = [...new Set(images.map((im) => im.cluster))].sort((a, b) => a - b).map((c) => join(root, clusterFolder(c, k)));
  return { linked, copied, written, folders };
}
