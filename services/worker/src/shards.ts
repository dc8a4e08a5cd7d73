import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { concatImages, decodeShard, parseManifest, DataError, type DatasetManifest, type ImageSet, type ShardEntry } from '@cvc/data';
import type { ObjectStore } from '@cvc/storage';

/**
 * Fetches a dataset's shards from object storage into a local cache keyed by
 * sha256, verifying each one (size, file hash, embedded checksum) before use.
 */
export class ShardCache {
  constructor(
    private readonly store: ObjectStore,
    private readonly dir: string,
    private readonly onDownload: (bytes: number, seconds: number) => void = () => {},
  ) {}

  async manifest(key: string): Promise<DatasetManifest> {
    return parseManifest(new TextDecoder().decode(await this.store.getBytes(key)), key);
  }

  private async shard(prefix: string, entry: ShardEntry): Promise<ImageSet> {
    await mkdir(this.dir, { recursive: true });
    const cached = join(this.dir, `${entry.sha256}.cvcs`);
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readFile(cached);
      if (createHash('sha256').update(bytes).digest('hex') !== entry.sha256) bytes = undefined;
    } catch {
      // Best effort: a cache entry that is missing or unreadable is downloaded again; a
      // broken cache directory then fails at the write below, with its real error.
      bytes = undefined;
    }
    if (!bytes) {
      const key = `${prefix}/${entry.name}`;
      const t0 = performance.now();
      bytes = await this.store.getBytes(key);
      this.onDownload(bytes.length, (performance.now() - t0) / 1000);
      const got = createHash('sha256').update(bytes).digest('hex');
      if (bytes.length !== entry.bytes || got !== entry.sha256) {
        throw new DataError(
          'SHARD_CHECKSUM',
          `downloaded ${bytes.length} bytes with sha256 ${got}; the manifest says ${entry.bytes} bytes, ${entry.sha256}`,
          key,
        );
      }
      // Workers may share the cache: a private temp name, then an atomic rename.
      const tmp = `${cached}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
      await writeFile(tmp, bytes);
      await rename(tmp, cached);
    }
    return decodeShard(bytes, entry.name).set;
  }

  /**
   * Every record of the dataset in manifest order (its shards in turn: the
   * order of a clustering job's assignments), with the manifest.
   */
  async allRecords(manifestKey: string): Promise<{ manifest: DatasetManifest; set: ImageSet }> {
    const manifest = await this.manifest(manifestKey);
    const prefix = manifestKey.replace(/\/manifest\.json$/, '');
    const parts: ImageSet[] = [];
    for (const e of manifest.shards) parts.push(await this.shard(prefix, e));
    if (parts.length === 0) throw new DataError('MANIFEST_CORRUPT', 'manifest lists no shards', manifestKey);
    return { manifest, set: concatImages(parts) };
  }

  /** Training (all folds but `fold`), validation (`fold`) and test sets. */
  async foldData(manifestKey: string, fold: number): Promise<{ train: ImageSet; val: ImageSet; test: ImageSet }> {
    const m = await this.manifest(manifestKey);
    const prefix = manifestKey.replace(/\/manifest\.json$/, '');
    const trainParts: ImageSet[] = [];
    let val: ImageSet | undefined;
    let test: ImageSet | undefined;
    for (const e of m.shards) {
      const set = await this.shard(prefix, e);
      if (e.split === 'test') test = set;
      else if (e.fold === fold) val = set;
      else trainParts.push(set);
    }
    if (!val || !test || trainParts.length === 0)
      throw new DataError('MANIFEST_CORRUPT', `manifest has no fold ${fold}, other folds or test shard`, manifestKey);
    return { train: concatImages(trainParts), val, test };
  }
}
