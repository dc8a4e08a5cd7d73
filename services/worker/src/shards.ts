import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError, silentLogger, throwIfAborted, type Logger } from '@cvc/core';
import { concatImages, decodeShard, parseManifest, DataError, type DatasetManifest, type ImageSet, type ShardEntry } from '@cvc/data';
import type { ObjectStore } from '@cvc/storage';

/** How the cache is kept. */
export interface ShardCacheOptions {
  /** Told when a cache write or clean-up failed (the shard is then used from memory). */
  readonly logger?: Logger;
  /**
   * Most bytes of shards kept in the directory (default: no limit). After each
   * download the least recently used shards beyond it are removed.
   */
  readonly maxBytes?: number;
}

/** A temp file of a write that never finished (its worker died) is removed after this long. */
const STALE_TMP_MS = 3_600_000;

/**
 * Fetches a dataset's shards from object storage into a local cache keyed by
 * sha256, verifying each one (size, file hash, embedded checksum) before use.
 * The cache is only a saving: a shard it cannot write (disk full, read-only
 * or missing directory) is used from memory, and the directory is kept under
 * `maxBytes` by removing the least recently used shards.
 */
export class ShardCache {
  private readonly logger: Logger;
  private readonly maxBytes: number;

  constructor(
    private readonly store: ObjectStore,
    private readonly dir: string,
    private readonly onDownload: (bytes: number, seconds: number) => void = () => {},
    opts: ShardCacheOptions = {},
  ) {
    this.logger = opts.logger ?? silentLogger;
    this.maxBytes = opts.maxBytes ?? Infinity;
  }

  /** The dataset's manifest; `signal` aborts its download (CancelledError). */
  async manifest(key: string, signal?: AbortSignal): Promise<DatasetManifest> {
    return parseManifest(new TextDecoder().decode(await this.store.getBytes(key, signal ? { signal } : {})), key);
  }

  /**
   * One shard, from the cache or downloaded. An abort of `signal` ends a download in flight (CancelledError); only a
   * whole verified download is written to the cache, so an aborted one leaves nothing there.
   */
  private async shard(prefix: string, entry: ShardEntry, signal?: AbortSignal): Promise<ImageSet> {
    throwIfAborted(signal, `loading shard ${prefix}/${entry.name}`);
    const cached = join(this.dir, `${entry.sha256}.cvcs`);
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readFile(cached);
      const got = createHash('sha256').update(bytes).digest('hex');
      if (got !== entry.sha256) {
        // Bit rot or a truncated copy: said once, then the shard is downloaded again and the entry rewritten.
        this.logger.warn('a cached shard does not match its sha256; downloading it again', {
          shard: `${prefix}/${entry.name}`,
          file: cached,
          bytes: bytes.length,
          expectedBytes: entry.bytes,
          sha256: got,
        });
        bytes = undefined;
      }
      // Marks it used, for the least-recently-used clean-up (another worker may have just removed it: no matter).
      else await utimes(cached, new Date(), new Date()).catch(() => undefined);
    } catch {
      // Best effort: a cache entry that is missing or unreadable is downloaded again; a
      // broken cache directory is then logged at the write below, with its real error.
      bytes = undefined;
    }
    if (!bytes) {
      const key = `${prefix}/${entry.name}`;
      const t0 = performance.now();
      bytes = await this.store.getBytes(key, signal ? { signal } : {});
      this.onDownload(bytes.length, (performance.now() - t0) / 1000);
      const got = createHash('sha256').update(bytes).digest('hex');
      if (bytes.length !== entry.bytes || got !== entry.sha256) {
        throw new DataError(
          'SHARD_CHECKSUM',
          `downloaded ${bytes.length} bytes with sha256 ${got}; the manifest says ${entry.bytes} bytes, ${entry.sha256}`,
          key,
        );
      }
      await this.keep(cached, bytes, key);
    }
    return decodeShard(bytes, entry.name).set;
  }

  /** Writes a verified shard into the cache, then trims the cache; a failure is logged, not thrown (the bytes are in memory). */
  private async keep(cached: string, bytes: Uint8Array, key: string): Promise<void> {
    // Workers may share the cache: a private temp name, then an atomic rename.
    const tmp = `${cached}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await mkdir(this.dir, { recursive: true });
      await writeFile(tmp, bytes);
      await rename(tmp, cached);
    } catch (err) {
      // The write's error is the one logged; a temp file left behind is removed by a later trim.
      await rm(tmp, { force: true }).catch(() => undefined);
      this.logger.warn('caching a downloaded shard failed; using it from memory (it is downloaded again next time)', {
        dir: this.dir,
        shard: key,
        error: describeError(err),
      });
      return;
    }
    if (Number.isFinite(this.maxBytes)) await this.trim(cached);
  }

  /** Removes the least recently used shards beyond `maxBytes` (never `keep`, the one just written) and stale temp files. */
  private async trim(keep: string): Promise<void> {
    try {
      const now = Date.now();
      const files: { path: string; size: number; used: number }[] = [];
      for (const name of await readdir(this.dir)) {
        const path = join(this.dir, name);
        const st = await stat(path).catch(() => undefined);
        if (!st?.isFile()) continue;
        if (name.endsWith('.tmp')) {
          if (now - st.mtimeMs > STALE_TMP_MS) await rm(path, { force: true });
        } else if (name.endsWith('.cvcs')) files.push({ path, size: st.size, used: st.mtimeMs });
      }
      let total = files.reduce((n, f) => n + f.size, 0);
      for (const f of files.sort((a, b) => a.used - b.used)) {
        if (total <= this.maxBytes) break;
        if (f.path === keep) continue;
        await rm(f.path, { force: true });
        total -= f.size;
      }
    } catch (err) {
      this.logger.warn('trimming the shard cache failed; it may hold more than its limit', {
        dir: this.dir,
        maxBytes: this.maxBytes,
        error: describeError(err),
      });
    }
  }

  /**
   * Every record of the dataset in manifest order (its shards in turn: the
   * order of a clustering job's assignments), with the manifest. `signal` aborts the downloads (CancelledError).
   */
  async allRecords(manifestKey: string, signal?: AbortSignal): Promise<{ manifest: DatasetManifest; set: ImageSet }> {
    const manifest = await this.manifest(manifestKey, signal);
    const prefix = manifestKey.replace(/\/manifest\.json$/, '');
    const parts: ImageSet[] = [];
    for (const e of manifest.shards) parts.push(await this.shard(prefix, e, signal));
    if (parts.length === 0) throw new DataError('MANIFEST_CORRUPT', 'manifest lists no shards', manifestKey);
    return { manifest, set: concatImages(parts) };
  }

  /** Training (all folds but `fold`), validation (`fold`) and test sets. `signal` aborts the downloads (CancelledError). */
  async foldData(manifestKey: string, fold: number, signal?: AbortSignal): Promise<{ train: ImageSet; val: ImageSet; test: ImageSet }> {
    const m = await this.manifest(manifestKey, signal);
    const prefix = manifestKey.replace(/\/manifest\.json$/, '');
    const trainParts: ImageSet[] = [];
    // A split may span several shards: every one is used (keeping only the last would evaluate on part of it, silently).
    const valParts: ImageSet[] = [];
    const testParts: ImageSet[] = [];
    for (const e of m.shards) {
      const set = await this.shard(prefix, e, signal);
      if (e.split === 'test') testParts.push(set);
      else if (e.fold === fold) valParts.push(set);
      else trainParts.push(set);
    }
    if (valParts.length === 0 || testParts.length === 0 || trainParts.length === 0)
      throw new DataError('MANIFEST_CORRUPT', `manifest has no fold ${fold}, other folds or test shard`, manifestKey);
    const whole = (parts: ImageSet[]): ImageSet => (parts.length === 1 ? (parts[0] as ImageSet) : concatImages(parts));
    return { train: concatImages(trainParts), val: whole(valParts), test: whole(testParts) };
  }
}
