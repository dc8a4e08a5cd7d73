import { readdir, realpath, stat } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import { throwIfAborted } from '@cvc/core';
import { DataError, type DataErrorCode } from './errors.js';

/** File extensions read as images (lower case); other files are ignored and counted. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.jpe', '.jfif', '.webp', '.tif', '.tiff', '.gif', '.avif'];

/** The most classes a folder may have: labels are one byte. */
export const MAX_CLASSES = 256;

/** One image file of a folder. */
export interface ImageFolderEntry {
  /** Path relative to the folder, `/`-separated (`cat/001.png`, `test/dog/7.jpg`). */
  readonly path: string;
  readonly split: 'train' | 'test';
  /** Index into `classNames`; 0 for an unlabeled folder. */
  readonly label: number;
}

/** A file the listing could not take: a symbolic link loop, a link out of the folder, a broken link. */
export interface ImageFolderProblem {
  readonly path: string;
  readonly code: DataErrorCode;
  readonly reason: string;
}

/** What `listImageFolder` found. */
export interface ImageFolderListing {
  /** The folder's real absolute path; entries' paths are relative to it. */
  readonly root: string;
  /** True when the images sit in class subfolders. */
  readonly labeled: boolean;
  /** Class subfolder names, sorted; `[]` for an unlabeled folder. */
  readonly classNames: readonly string[];
  /** True when a `test/` subfolder gives the test split. */
  readonly testFolder: boolean;
  /** Train entries sorted by path, then test entries sorted by path. */
  readonly entries: readonly ImageFolderEntry[];
  /** Files that cannot be imported, each with its reason (in walk order; then the extra paths of files reached twice, in path order). */
  readonly problems: readonly ImageFolderProblem[];
  /** Files and folders skipped on purpose. */
  readonly ignored: { readonly hidden: number; readonly notImage: number };
}

/** Cancellation of a listing. */
export interface ListOptions {
  readonly signal?: AbortSignal;
}

const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** `/`-separated relative path. */
function rel(root: string, abs: string): string {
  return relative(root, abs).split(sep).join('/');
}

function within(root: string, real: string): boolean {
  return real === root || real.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** An image file: the path it was found at, the real path of the file (links resolved) and its identity (device:inode, the same for all its hard links). */
interface FoundImage {
  readonly abs: string;
  readonly real: string;
  readonly id: string;
}

interface Found {
  readonly dirs: { name: string; abs: string; real: string }[];
  readonly images: FoundImage[];
}

/**
 * Lists an image folder. Layout: class subfolders give labels and class
 * names (sorted; nested folders inside a class belong to it); a folder with
 * images and no subfolders is unlabeled; a `test/` subfolder (laid out the
 * same way) is the test split. Hidden files and folders (`.name`) and files
 * without an image extension are ignored and counted. Symbolic links are
 * followed inside the folder; a link loop (SYMLINK_LOOP), a link to a place
 * outside the folder (PATH_ESCAPES) or a broken link (FILE_MISSING) is a
 * problem of that path, reported in `problems`, never followed; so is a file
 * with an image name that is not a regular file (NOT_AN_IMAGE: a named pipe
 * would block its read forever), and a subfolder that cannot be read
 * (FILE_UNREADABLE, e.g. lost+found). A file reached by more than one path
 * (through symbolic links, or hard links: the same device and inode) is listed once, at its own path when that is in the
 * folder, else at its first path; each other path is an IMAGE_FOLDER_INVALID
 * problem (one image in two classes, or in two folds, would leak between
 * training and validation). Only names and file types are read here, no
 * image bytes: memory is one entry per file.
 *
 * Throws DataError IMAGE_FOLDER_INVALID (not a folder, images beside class
 * folders, more than 256 classes) or IMAGE_FOLDER_EMPTY (no image at all).
 */
export async function listImageFolder(dir: string, opts: ListOptions = {}): Promise<ImageFolderListing> {
  let root: string;
  try {
    root = await realpath(dir);
    if (!(await stat(root)).isDirectory()) throw new DataError('IMAGE_FOLDER_INVALID', 'is not a folder', dir);
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError('FILE_MISSING', 'cannot be opened as a folder', dir, { cause: err });
  }
  const problems: ImageFolderProblem[] = [];
  const ignored = { hidden: 0, notImage: 0 };
  const problem = (abs: string, code: DataErrorCode, reason: string): void => {
    problems.push({ path: rel(root, abs), code, reason });
  };

  /** The folders and image files directly in `abs`, whose real path is `realAbs` (links resolved and checked). */
  async function scan(abs: string, realAbs: string, ancestors: ReadonlySet<string>): Promise<Found> {
    throwIfAborted(opts.signal, `listing ${dir}`);
    const found: Found = { dirs: [], images: [] };
    let dirents;
    try {
      dirents = await readdir(abs, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      if (abs === root) throw new DataError('FILE_UNREADABLE', `is a folder that cannot be read (${code})`, dir, { cause: err });
      // An unreadable subfolder (lost+found, another user's) or one removed meanwhile: a problem of that path, like a bad file.
      problem(abs, 'FILE_UNREADABLE', `is a folder that cannot be read (${code})`);
      return found;
    }
    dirents.sort((a, b) => byCodeUnits(a.name, b.name));
    for (const d of dirents) {
      const p = join(abs, d.name);
      if (d.name.startsWith('.')) {
        ignored.hidden++;
        continue;
      }
      let isDir = d.isDirectory();
      let isFile = d.isFile();
      let real = join(realAbs, d.name);
      if (d.isSymbolicLink()) {
        try {
          real = await realpath(p);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ELOOP') problem(p, 'SYMLINK_LOOP', 'is a symbolic link loop');
          else problem(p, 'FILE_MISSING', `is a broken symbolic link (${code ?? String(err)})`);
          continue;
        }
        if (!within(root, real)) {
          problem(p, 'PATH_ESCAPES', `is a symbolic link to ${real}, outside the folder`);
          continue;
        }
      }
      // One stat per entry that may be listed (it follows links): the type of a link's target and the file's (dev, ino).
      let id = '';
      if (d.isSymbolicLink() || (isFile && IMAGE_EXTENSIONS.includes(extname(d.name).toLowerCase()))) {
        let target;
        try {
          target = await stat(real, { bigint: true });
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? String(err);
          // Removed since readdir, or not statable: a problem of that path, like a bad file.
          problem(p, code === 'ENOENT' ? 'FILE_MISSING' : 'FILE_UNREADABLE', `cannot be examined (${code})`);
          continue;
        }
        isDir = target.isDirectory();
        isFile = target.isFile();
        id = `${target.dev}:${target.ino}`;
      }
      if (isDir) {
        if (ancestors.has(real)) {
          problem(p, 'SYMLINK_LOOP', `is a symbolic link loop (back to ${rel(root, real) || '.'})`);
          continue;
        }
        found.dirs.push({ name: d.name, abs: p, real });
      } else if (IMAGE_EXTENSIONS.includes(extname(d.name).toLowerCase())) {
        // Reading a named pipe waits for a writer forever (and no signal can stop it); a device never ends.
        if (!isFile) problem(p, 'NOT_AN_IMAGE', 'is not a regular file (a named pipe, socket or device)');
        else found.images.push({ abs: p, real, id });
      } else {
        ignored.notImage++;
      }
    }
    return found;
  }

  /** Every image under `abs`, recursively. */
  async function walk(abs: string, real: string, ancestors: ReadonlySet<string>, out: FoundImage[]): Promise<void> {
    const inner = new Set(ancestors).add(real);
    const f = await scan(abs, real, inner);
    out.push(...f.images);
    for (const d of f.dirs) await walk(d.abs, d.real, inner, out);
  }

  const top = await scan(root, root, new Set([root]));
  const testDir = top.dirs.find((d) => d.name === 'test');
  const classDirs = top.dirs.filter((d) => d !== testDir);
  const labeled = classDirs.length > 0;
  const topAncestors = new Set([root]);
  const classes = new Map<string, { train: FoundImage[]; test: FoundImage[] }>();
  const flat = { train: [...top.images], test: [] as FoundImage[] };
  if (labeled && top.images.length > 0) {
    const names = top.images.slice(0, 3).map((p) => rel(root, p.abs));
    throw new DataError(
      'IMAGE_FOLDER_INVALID',
      `has class subfolders and also ${top.images.length} image(s) at its top level (${names.join(', ')}${top.images.length > 3 ? ', ...' : ''}): put every image in a class folder, or use a flat folder without subfolders`,
      dir,
    );
  }
  for (const d of classDirs) {
    const list: FoundImage[] = [];
    await walk(d.abs, d.real, topAncestors, list);
    classes.set(d.name, { train: list, test: [] });
  }
  if (testDir) {
    const testAncestors = new Set([root, testDir.real]);
    const t = await scan(testDir.abs, testDir.real, testAncestors);
    if (labeled) {
      if (t.images.length > 0)
        throw new DataError(
          'IMAGE_FOLDER_INVALID',
          `has class subfolders, so test/ must have them too, but test/ holds ${t.images.length} image(s) directly`,
          dir,
        );
      for (const d of t.dirs) {
        const list: FoundImage[] = [];
        await walk(d.abs, d.real, testAncestors, list);
        const c = classes.get(d.name) ?? { train: [], test: [] };
        c.test.push(...list);
        classes.set(d.name, c);
      }
    } else {
      flat.test.push(...t.images);
      for (const d of t.dirs) await walk(d.abs, d.real, testAncestors, flat.test);
    }
  }
  const classNames = labeled ? [...classes.keys()].sort(byCodeUnits) : [];
  if (classNames.length > MAX_CLASSES)
    throw new DataError('IMAGE_FOLDER_INVALID', `has ${classNames.length} class folders, at most ${MAX_CLASSES} are supported`, dir);
  type Listed = { entry: ImageFolderEntry; real: string; id: string };
  const found: Listed[] = [];
  if (labeled) {
    classNames.forEach((name, label) => {
      const c = classes.get(name) as { train: FoundImage[]; test: FoundImage[] };
      for (const p of c.train) found.push({ entry: { path: rel(root, p.abs), split: 'train', label }, real: p.real, id: p.id });
      for (const p of c.test) found.push({ entry: { path: rel(root, p.abs), split: 'test', label }, real: p.real, id: p.id });
    });
  } else {
    for (const p of flat.train) found.push({ entry: { path: rel(root, p.abs), split: 'train', label: 0 }, real: p.real, id: p.id });
    for (const p of flat.test) found.push({ entry: { path: rel(root, p.abs), split: 'test', label: 0 }, real: p.real, id: p.id });
  }
  const bySplitAndPath = (a: ImageFolderEntry, b: ImageFolderEntry): number =>
    a.split === b.split ? byCodeUnits(a.path, b.path) : a.split === 'train' ? -1 : 1;
  found.sort((a, b) => bySplitAndPath(a.entry, b.entry));
  // One entry per file (by device and inode: symbolic and hard links alike): its own path where that is listed, else the first path it was found at.
  const kept = new Map<string, Listed>();
  for (const f of found) {
    const k = kept.get(f.id);
    if (k === undefined || (rel(root, f.real) === f.entry.path && rel(root, k.real) !== k.entry.path)) kept.set(f.id, f);
  }
  for (const f of found) {
    const k = kept.get(f.id) as Listed;
    if (k !== f)
      problems.push({
        path: f.entry.path,
        code: 'IMAGE_FOLDER_INVALID',
        reason: `is the same file as ${k.entry.path} (${k.real === f.real ? 'through a symbolic link' : 'a hard link to it'}): each image may be in the folder once`,
      });
  }
  const train = [...kept.values()].map((f) => f.entry).filter((e) => e.split === 'train');
  const test = [...kept.values()].map((f) => f.entry).filter((e) => e.split === 'test');
  train.sort((a, b) => byCodeUnits(a.path, b.path));
  test.sort((a, b) => byCodeUnits(a.path, b.path));
  if (train.length + test.length === 0 && problems.length === 0) {
    throw new DataError('IMAGE_FOLDER_EMPTY', `has no images (${ignored.notImage} other file(s) and ${ignored.hidden} hidden one(s) ignored)`, dir);
  }
  return { root, labeled, classNames, testFolder: testDir !== undefined, entries: [...train, ...test], problems, ignored };
}
