import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DatasetManifest } from './manifest.js';
import type { ObjectSink } from './image-import.js';
import { parseManifest } from './manifest.js';
import { decodeShard, type Shard } from './shard.js';
import { DataError } from './errors.js';

const MANIFEST = 'manifest.json';

/** Why a file read failed, in a word: ENOENT, EACCES, EISDIR, ERR_FS_FILE_TOO_LARGE, ... */
const errnoOf = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));

/**
 * A sink (for shards and sources files) that writes into a local directory,
 * each object atomically via a temp file. Before its first object it removes
 * the directory's manifest.json: the objects it writes replace those of an
 * earlier import there, so a re-import that stops part way leaves no manifest
 * naming shards that are no longer its own (writeManifest, called last, makes
 * the new version visible).
 */
export function directorySink(dir: string): ObjectSink {
  let cleared = false;
  return async (name, chunks) => {
    await mkdir(dir, { recursive: true });
    if (!cleared) {
      await rm(join(dir, MANIFEST), { force: true });
      cleared = true;
    }
    const dest = join(dir, name);
    const tmp = `${dest}.tmp`;
    const fh = await open(tmp, 'w');
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      for await (const c of chunks) {
        hash.update(c);
        bytes += c.length;
        await fh.write(c);
      }
    } catch (err) {
      // A failed or stopped write leaves no partial file behind.
      await fh.close();
      await rm(tmp, { force: true });
      throw err;
    }
    await fh.close();
    await rename(tmp, dest);
    return { bytes, sha256: hash.digest('hex') };
  };
}

export async function writeManifest(dir: string, manifest: DatasetManifest): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
}

export async function readManifestFile(dir: string): Promise<DatasetManifest> {
  const p = join(dir, MANIFEST);
  let text: string;
  try {
    text = await readFile(p, 'utf8');
  } catch (err) {
    throw new DataError('MANIFEST_MISSING', `cannot be read (${errnoOf(err)})`, p, { cause: err });
  }
  return parseManifest(text, p);
}

/**
 * Reads a shard from a local directory and checks it against its manifest
 * entry (size and file hash) and its own embedded checksum.
 */
export async function readShardFile(dir: string, entry: { name: string; bytes: number; sha256: string }): Promise<Shard> {
  const p = join(dir, entry.name);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(p);
  } catch (err) {
    throw new DataError('SHARD_MISSING', `cannot be read (${errnoOf(err)})`, p, { cause: err });
  }
  if (bytes.length !== entry.bytes) throw new DataError('SHARD_TRUNCATED', `is ${bytes.length} bytes, the manifest says ${entry.bytes}`, p);
  const shard = decodeShard(bytes, p);
  if (shard.sha256 !== entry.sha256) throw new DataError('SHARD_CHECKSUM', `sha256 ${shard.sha256} does not match the manifest's ${entry.sha256}`, p);
  return shard;
}
