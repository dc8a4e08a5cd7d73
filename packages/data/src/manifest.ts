import { createHash } from 'node:crypto';
import { ConfigError } from '@cvc/core';
import type { Dataset } from './load.js';
import { classHistogram, selectImages, type ImageSet } from './image-set.js';
import { partFolds, randomEqualFolds, stratifiedKFold, stratifiedSubset, type FoldScheme } from './folds.js';
import { checkShardSize, shardBytes, shardChunks } from './shard.js';
import { DataError } from './errors.js';
import type { DatasetSources } from './sources.js';
import type { ImageFit } from './image-decode.js';

/** One shard as the manifest records it. */
export interface ShardEntry {
  /** Object name relative to the dataset's prefix, e.g. `fold-0.cvcs`. */
  readonly name: string;
  readonly split: 'train' | 'test';
  /** Fold number for training shards; absent for the test split. */
  readonly fold?: number;
  readonly count: number;
  readonly bytes: number;
  readonly sha256: string;
  /** Images per class, indexed by label. */
  readonly classCounts: readonly number[];
}

/**
 * The manifest of an imported dataset. It holds no timestamps: importing the
 * same data with the same fold settings yields the same manifest, byte for byte.
 */
export interface DatasetManifest {
  readonly format: 'cvc-dataset';
  readonly formatVersion: 1;
  readonly dataset: string;
  /** First 16 hex digits of the SHA-256 over the source images and labels, then the fold settings. */
  readonly version: string;
  readonly sourceSha256: string;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly folds: { readonly k: number; readonly scheme: FoldScheme; readonly seed: number; readonly limit: number | null };
  readonly shards: readonly ShardEntry[];
  /**
   * Per split, the file listing each record's source path (by source index):
   * present for datasets imported from an image folder, absent otherwise.
   */
  readonly sources?: DatasetSources;
  /** How an image folder was imported; absent for the built-in datasets. */
  readonly imageFolder?: ImageFolderInfo;
}

/** The settings and outcome of an image-folder import, as the manifest records them. */
export interface ImageFolderInfo {
  /** False for a flat folder: the labels are all 0 and mean nothing (no scores). */
  readonly labeled: boolean;
  readonly fit: ImageFit;
  /** `folder`: a test/ subfolder; `fraction`: a seeded (stratified when labeled) share of the images. */
  readonly test: { readonly from: 'folder' } | { readonly from: 'fraction'; readonly fraction: number };
  /** Invalid files skipped with --skip-invalid. */
  readonly skipped: number;
}

export interface ImportOptions {
  readonly folds: number;
  readonly scheme: FoldScheme;
  readonly seed: number;
  /** Use only this many training images (seeded stratified subset) and at most this many test images. */
  readonly limit?: number;
}

/** Writes one object and returns its size and hash; storage decides where it goes. */
export type ShardSink = (name: string, chunks: Iterable<Uint8Array>) => Promise<{ bytes: number; sha256: string }>;

function sourceHash(sets: readonly ImageSet[]): string {
  const h = createHash('sha256');
  for (const s of sets) {
    h.update(`${s.count}x${s.height}x${s.width}x${s.channels};`);
    h.update(s.images);
    h.update(s.labels);
  }
  return h.digest('hex');
}

/** The fold index arrays for a dataset, by scheme. */
export function computeFolds(ds: Dataset, train: ImageSet, trainIdx: Int32Array | undefined, opts: ImportOptions): Int32Array[] {
  if (opts.scheme === 'stratified') return stratifiedKFold(train.labels, opts.folds, opts.seed);
  if (ds.format === 'cifar10') {
    if (opts.folds !== 5)
      throw new ConfigError('folds', `the seed scheme for CIFAR-10 uses the five official batches as folds, so --folds must be 5 (got ${opts.folds})`);
    const sizes = (ds.trainBatches ?? []).map((b) => b.count);
    const parts = partFolds(sizes);
    if (trainIdx === undefined) return parts;
    // With --limit, keep each batch's share of the subset in that batch's fold.
    const pos = new Map<number, number>();
    trainIdx.forEach((src, i) => pos.set(src, i));
    return parts.map((p) => Int32Array.from([...p].filter((src) => pos.has(src)).map((src) => pos.get(src) as number)));
  }
  return randomEqualFolds(train.count, opts.folds, opts.seed);
}

/**
 * Splits a dataset into K folds and writes each fold and the test split as a
 * shard through `sink`. Returns the manifest (the caller stores it).
 */
export async function importDataset(ds: Dataset, opts: ImportOptions, sink: ShardSink): Promise<DatasetManifest> {
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < opts.folds)) {
    throw new ConfigError('limit', `must be an integer >= the fold count (${opts.folds}), got ${opts.limit}`);
  }
  const trainIdx = opts.limit !== undefined ? stratifiedSubset(ds.train.labels, opts.limit, opts.seed) : undefined;
  const train = trainIdx ? selectImages(ds.train, trainIdx) : ds.train;
  const testCount = Math.min(opts.limit ?? ds.test.count, ds.test.count);
  const testIdx = opts.limit !== undefined ? stratifiedSubset(ds.test.labels, testCount, opts.seed) : undefined;
  const test = testIdx ? selectImages(ds.test, testIdx) : ds.test;
  const folds = computeFolds(ds, train, trainIdx, opts);
  if (folds.some((f) => f.length === 0)) throw new ConfigError('folds', `${opts.folds} folds leave a fold empty`);
  folds.forEach((f, i) =>
    checkShardSize(`fold-${i}.cvcs`, shardBytes(train, f.length, { dataset: ds.name, version: '0'.repeat(16), split: 'train', fold: i })),
  );
  checkShardSize('test.cvcs', shardBytes(test, test.count, { dataset: ds.name, version: '0'.repeat(16), split: 'test' }));

  const sourceSha256 = sourceHash([ds.train, ds.test]);
  const version = createHash('sha256')
    .update(`${sourceSha256}:k=${opts.folds}:scheme=${opts.scheme}:seed=${opts.seed}:limit=${opts.limit ?? 'all'}`)
    .digest('hex')
    .slice(0, 16);
  // Source indices refer to the full split, so a limited import stays traceable.
  const toSource = (idx: Int32Array | undefined, i: number): number => (idx ? (idx[i] as number) : i);
  const shards: ShardEntry[] = [];
  for (let f = 0; f < folds.length; f++) {
    const fold = folds[f] as Int32Array;
    const srcIndices = Uint32Array.from(fold, (i) => toSource(trainIdx, i));
    const name = `fold-${f}.cvcs`;
    const written = await sink(name, shardChunks(train, fold, { dataset: ds.name, version, split: 'train', fold: f }, srcIndices));
    const labels = Uint8Array.from(fold, (i) => train.labels[i] as number);
    shards.push({ name, split: 'train', fold: f, count: fold.length, ...written, classCounts: classHistogram(labels, ds.numClasses) });
  }
  const testOrder = Uint32Array.from({ length: test.count }, (_, i) => i);
  const testSrc = Uint32Array.from(testOrder, (i) => toSource(testIdx, i));
  const written = await sink('test.cvcs', shardChunks(test, testOrder, { dataset: ds.name, version, split: 'test' }, testSrc));
  shards.push({ name: 'test.cvcs', split: 'test', count: test.count, ...written, classCounts: classHistogram(test.labels, ds.numClasses) });
  return {
    format: 'cvc-dataset',
    formatVersion: 1,
    dataset: ds.name,
    version,
    sourceSha256,
    height: ds.train.height,
    width: ds.train.width,
    channels: ds.train.channels,
    numClasses: ds.numClasses,
    classNames: ds.classNames,
    folds: { k: opts.folds, scheme: opts.scheme, seed: opts.seed, limit: opts.limit ?? null },
    shards,
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
/** A plain object name (`fold-0.cvcs`): joined to a directory or key prefix, so no separators or dot names. */
const isObjectName = (v: unknown): boolean => typeof v === 'string' && /^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(v);

/** The first problem of a manifest's shard entry, as `field: what`, or undefined when it is sound. */
function shardEntryProblem(e: unknown): string | undefined {
  if (!isObject(e)) return 'must be an object';
  if (!isObjectName(e['name'])) return `.name must be a plain object name, got ${JSON.stringify(e['name'])}`;
  if (e['split'] !== 'train' && e['split'] !== 'test') return `.split must be "train" or "test", got ${JSON.stringify(e['split'])}`;
  if (e['split'] === 'train' && !isCount(e['fold'])) return `.fold must be a whole number for a training shard, got ${JSON.stringify(e['fold'])}`;
  for (const f of ['count', 'bytes'] as const) if (!isCount(e[f])) return `.${f} must be a whole number >= 0, got ${JSON.stringify(e[f])}`;
  if (typeof e['sha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(e['sha256'])) return `.sha256 must be 64 hex digits, got ${JSON.stringify(e['sha256'])}`;
  if (!Array.isArray(e['classCounts']) || !e['classCounts'].every(isCount)) return '.classCounts must be an array of whole numbers';
  return undefined;
}

/** Reads the manifest at `key` from an object store and parses it (parseManifest). */
export async function readManifest(store: { getBytes(key: string): Promise<Uint8Array> }, key: string): Promise<DatasetManifest> {
  return parseManifest(new TextDecoder().decode(await store.getBytes(key)), key);
}

/** Parses and checks a manifest read from storage. */
export function parseManifest(text: string, name: string): DatasetManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new DataError('MANIFEST_CORRUPT', 'is not valid JSON', name, { cause: err });
  }
  if (!isObject(parsed))
    throw new DataError(
      'MANIFEST_CORRUPT',
      `is not a cvc dataset manifest (a JSON ${parsed === null ? 'null' : typeof parsed === 'object' ? 'array' : typeof parsed}, not an object)`,
      name,
    );
  const m = parsed as unknown as DatasetManifest;
  if (m.format !== 'cvc-dataset' || m.formatVersion !== 1 || !Array.isArray(m.shards)) {
    throw new DataError('MANIFEST_CORRUPT', `is not a cvc dataset manifest (format ${String(m.format)}, version ${String(m.formatVersion)})`, name);
  }
  (m.shards as readonly unknown[]).forEach((e, i) => {
    const problem = shardEntryProblem(e);
    if (problem !== undefined) throw new DataError('MANIFEST_CORRUPT', `shards[${i}]${problem.startsWith('.') ? '' : ' '}${problem}`, name);
  });
  // Optional (image-folder imports): each split's sources file.
  if (m.sources !== undefined) {
    for (const split of ['train', 'test'] as const) {
      const e = (m.sources as Partial<DatasetSources>)[split];
      if (e === undefined || typeof e.name !== 'string' || !Number.isInteger(e.count) || !Number.isInteger(e.bytes) || typeof e.sha256 !== 'string')
        throw new DataError('MANIFEST_CORRUPT', `sources.${split} must be { name, count, bytes, sha256 }`, name);
    }
  }
  return m;
}
