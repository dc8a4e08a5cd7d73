import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isFileNotFound, throwIfAborted } from '@cvc/core';
import {
  concatImages,
  decodeShard,
  parseManifest,
  readManifest,
  readSourcePaths,
  selectImages,
  stratifiedSubset,
  type DatasetManifest,
  type ImageSet,
} from '@cvc/data';
import { createDatasetCatalog, createObjectStore } from '@cvc/storage';
import type { tf } from '@cvc/tfjs-runtime';
import { RemoteError, UsageError } from './errors.js';
import type { ClusterEndpoints } from './cluster-config.js';
import type { EmbeddedImages } from './cluster-input.js';
import { embedAbortable, type SliceListener } from './embed-slices.js';

/** An imported dataset version: its manifest and a way to fetch its objects by name. */
export interface ImportedVersion {
  readonly manifest: DatasetManifest;
  /** Where it was read from, for messages. */
  readonly where: string;
  readonly getBytes: (name: string) => Promise<Uint8Array>;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Whether `s` can name a dataset imported into the cluster (one object-key segment, as @cvc/storage's validateSegment takes). */
export const isDatasetName = (s: string): boolean => /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(s) && !s.includes('..');

/** The import written by `cvc dataset import ... --out DIR`, or undefined when `dir` holds no manifest.json. */
export async function importedFromDirectory(dir: string): Promise<ImportedVersion | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, 'manifest.json'), 'utf8');
  } catch (err) {
    if (isFileNotFound(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
  return { manifest: parseManifest(text, join(dir, 'manifest.json')), where: dir, getBytes: async (name) => new Uint8Array(await readFile(join(dir, name))) };
}

/**
 * A dataset imported into the cluster's S3: `version` when given (the
 * encoder's own, from its metadata), else the newest import.
 */
export async function importedFromCluster(cluster: ClusterEndpoints, dataset: string, version: string | undefined): Promise<ImportedVersion> {
  const store = createObjectStore(cluster.s3);
  const imports = await createDatasetCatalog(store).list(dataset);
  const imp = (version !== undefined ? imports.find((i) => i.version === version) : undefined) ?? imports[imports.length - 1];
  if (imp === undefined)
    throw new UsageError(`'${dataset}' is neither a known dataset (mnist, fashion-mnist, cifar-10), a directory, nor a dataset imported into the cluster`);
  const manifest = await readManifest(store, imp.manifest);
  const prefix = imp.manifest.replace(/manifest\.json$/, '');
  return { manifest, where: `${dataset} version ${imp.version}`, getBytes: (name) => store.getBytes(prefix + name) };
}

/**
 * A split of an imported dataset (the test shard, or every fold shard for
 * `train`), checked against the manifest's sha256, optionally a seeded
 * stratified subset, embedded. Each record's path is its source file (an
 * imported image folder) or `split:index` (its index in the source split).
 */
export async function embedImported(
  encoder: tf.LayersModel,
  v: ImportedVersion,
  opts: { split: 'test' | 'train'; limit?: number; batchSize: number; signal?: AbortSignal; onSlice?: SliceListener },
): Promise<EmbeddedImages> {
  const entries = v.manifest.shards.filter((s) => s.split === opts.split);
  if (entries.length === 0) throw new RemoteError('NO_TEST_SPLIT', `${v.where} has no ${opts.split} shard`);
  const sets: ImageSet[] = [];
  const indices: number[] = [];
  for (const e of entries) {
    throwIfAborted(opts.signal, 'reading the dataset');
    const bytes = await v.getBytes(e.name);
    if (sha256(bytes) !== e.sha256) throw new RemoteError('CHECKSUM', `${v.where}: ${e.name}: sha256 does not match the manifest`);
    const shard = decodeShard(bytes, e.name);
    sets.push(shard.set);
    // A loop: spreading a large typed array into push() overflows the call stack.
    for (const i of shard.indices) indices.push(i);
  }
  const whole = concatImages(sets);
  const sources = await readSourcePaths(v.manifest, opts.split, v.getBytes);
  const pick = opts.limit !== undefined && opts.limit < whole.count ? stratifiedSubset(whole.labels, opts.limit, 0) : undefined;
  const set = pick ? selectImages(whole, pick) : whole;
  const order = pick ? Array.from(pick, (i) => indices[i] as number) : indices;
  const paths = order.map((src) => sources?.[src] ?? `${opts.split}:${src}`);
  const codes = await embedAbortable(encoder, set, opts.batchSize, opts.signal, opts.onSlice);
  const labelled = v.manifest.imageFolder?.labeled !== false;
  return { codes, labels: set.labels, labelled, classNames: v.manifest.classNames, paths, pixels: set, skipped: [] };
}
