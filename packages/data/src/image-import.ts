import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { ConfigError, throwIfAborted } from '@cvc/core';
import { DataError } from './errors.js';
import { maxSubsetLeavingOne, stratifiedKFold, stratifiedSubset } from './folds.js';
import { classHistogram } from './image-set.js';
import { decodeImage, decodeImageWithInfo, probeImage, type ImageFit, type ImageInfo } from './image-decode.js';
import type { ImageFolderEntry, ImageFolderListing, ImageFolderProblem } from './image-folder.js';
import type { DatasetManifest, ImageFolderInfo, ShardEntry } from './manifest.js';
import { mapOrdered } from './ordered-map.js';
import { openPixelSpool, type PixelSpool } from './pixel-spool.js';
import { checkShardSize, shardBytes, shardChunksFrom } from './shard.js';
import { encodeSources, sourcesName, type DatasetSources, type SourcesEntry } from './sources.js';

/** Writes one object (a shard, a sources file) from chunks and returns its size and hash. */
export type ObjectSink = (name: string, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) => Promise<{ bytes: number; sha256: string }>;

/** The settings of an image-folder import. */
export interface ImageImportOptions {
  /** The dataset's name (its catalog entry). */
  readonly name: string;
  /** Target size; default: the first image's size (in path order), which every image must then have (a ConfigError `size` otherwise). */
  readonly height?: number;
  readonly width?: number;
  /** 1 or 3; default: the first image's (1 when it is greyscale, else 3), which every image must then share (a ConfigError `channels` otherwise). */
  readonly channels?: 1 | 3;
  /** Default `cover`. */
  readonly fit?: ImageFit;
  readonly folds: number;
  readonly seed: number;
  /** Share of the images held out as the test split when the folder has no test/ subfolder (default 0.1). */
  readonly testFraction?: number;
  /** Skip invalid files (each reported) instead of failing. */
  readonly skipInvalid?: boolean;
  /** Images decoded at once (default: twice the CPU count, at most 8: file reads overlap decodes). */
  readonly concurrency?: number;
  /**
   * Where the check pass keeps the decoded pixels for the write pass (a
   * scratch file of images x height x width x channels bytes, removed when
   * the plan is written or closed). Default: the OS temp directory.
   */
  readonly scratchDir?: string;
  /**
   * At most this many bytes of decoded pixels go to the scratch file
   * (default DEFAULT_SCRATCH_BYTES, from $CVC_IMPORT_SCRATCH_BYTES where set;
   * 0 = none). The images past it are decoded again by the write pass and
   * checked against the digest the check pass took, as before the scratch
   * file existed: a huge folder never needs its size again in temp space.
   */
  readonly maxScratchBytes?: number;
  /** The most bytes one shard may have (default MAX_SHARD_BYTES, what a worker can read): a larger one is refused before anything is written. */
  readonly maxShardBytes?: number;
}

/** The scratch file's default cap: 4 GiB of decoded pixels (about 5.5 million 28x28 grey images, 350,000 64x64 RGB). */
export const DEFAULT_SCRATCH_BYTES = 4 * 1024 ** 3;

/** The cap on scratch bytes: `opts.maxScratchBytes`, else $CVC_IMPORT_SCRATCH_BYTES, else DEFAULT_SCRATCH_BYTES. */
export function scratchCap(opts: Pick<ImageImportOptions, 'maxScratchBytes'>, env: string | undefined = process.env['CVC_IMPORT_SCRATCH_BYTES']): number {
  const v = opts.maxScratchBytes ?? (env === undefined || env.trim() === '' ? DEFAULT_SCRATCH_BYTES : Number(env));
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new ConfigError(
      opts.maxScratchBytes !== undefined ? 'maxScratchBytes' : 'CVC_IMPORT_SCRATCH_BYTES',
      `must be a whole number of bytes >= 0, got ${opts.maxScratchBytes ?? env}`,
    );
  }
  return v;
}

/** Progress, skip reports and cancellation of an image-folder import. */
export interface ImageImportHooks {
  readonly signal?: AbortSignal;
  /** `check`: decoding every image (once) to validate and hash it; `write`: writing the decoded pixels into the shards. */
  readonly onProgress?: (phase: 'check' | 'write', done: number, total: number) => void;
  /** Each invalid file skipped with `skipInvalid`. */
  readonly onSkip?: (problem: ImageFolderProblem) => void;
}

/**
 * Every invalid file of a folder, when the command (an import, or embed and
 * cluster of `--images`) was not told to skip them; each is named with its
 * reason, at most 20 listed. Nothing is written (`outcome` says so).
 */
export class InvalidImagesError extends DataError {
  readonly problems: readonly ImageFolderProblem[];

  constructor(root: string, problems: readonly ImageFolderProblem[], outcome = 'nothing imported') {
    const first = problems[0] as ImageFolderProblem;
    const shown = problems.slice(0, 20).map((p) => `  ${p.path}: ${p.reason} [${p.code}]`);
    if (problems.length > shown.length) shown.push(`  ... and ${problems.length - shown.length} more`);
    super(first.code, `${problems.length} invalid file(s) in ${root}, ${outcome} (--skip-invalid skips them):\n${shown.join('\n')}`);
    this.problems = problems;
  }
}

/**
 * What the check pass found: everything the write pass needs (the decoded
 * pixels included, in a scratch file), and the version. A plan holds that
 * file until it is written (writeImageFolder) or closed.
 */
export interface ImageFolderPlan {
  readonly listing: ImageFolderListing;
  readonly name: string;
  readonly version: string;
  readonly sourceSha256: string;
  readonly height: number;
  readonly width: number;
  readonly channels: 1 | 3;
  readonly fit: ImageFit;
  readonly folds: { readonly k: number; readonly seed: number; readonly indices: readonly Int32Array[] };
  /** The splits' images in source-index order. */
  readonly train: readonly ImageFolderEntry[];
  readonly test: readonly ImageFolderEntry[];
  readonly testFrom: ImageFolderInfo['test'];
  readonly skipped: readonly ImageFolderProblem[];
  readonly concurrency: number;
  /** The decoded pixels of the valid images that fit under the scratch cap, in the spool slot `slots` gives for its path. */
  readonly spool: PixelSpool;
  readonly slots: ReadonlyMap<string, number>;
  /** SHA-256 (16 hex digits) of the pixels of each valid image past the cap: the write pass decodes those again and compares. */
  readonly digests: ReadonlyMap<string, string>;
  /** Removes the decoded pixels (a plan not written, e.g. its version exists already); idempotent. */
  close(): Promise<void>;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex').slice(0, 16);

function problemOf(err: unknown, path: string): ImageFolderProblem {
  if (err instanceof DataError) {
    const prefix = `${path}: `;
    return { path, code: err.code, reason: err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message };
  }
  throw err;
}

/**
 * The check pass: decodes every listed image at the target size (bounded
 * concurrency, nothing held in memory but the images in flight and one
 * write buffer), collects the invalid ones, hashes the pixels, labels and
 * paths into the version, keeps the pixels in a scratch file for the write
 * pass (so no image is decoded twice) and assigns the test split (test/ or
 * a seeded stratified fraction) and the stratified folds. Writes nothing to
 * the dataset. Throws InvalidImagesError naming every invalid file unless
 * `skipInvalid` (the scratch file is removed on any failure).
 */
export async function checkImageFolder(listing: ImageFolderListing, opts: ImageImportOptions, hooks: ImageImportHooks = {}): Promise<ImageFolderPlan> {
  const what = `importing ${listing.root}`;
  const concurrency = opts.concurrency ?? Math.min(8, 2 * availableParallelism());
  if (!(Number.isInteger(concurrency) && concurrency >= 1)) throw new ConfigError('concurrency', `must be a whole number >= 1, got ${concurrency}`);
  const fit = opts.fit ?? 'cover';
  if (listing.testFolder && opts.testFraction !== undefined)
    throw new ConfigError('test-fraction', `the folder has a test/ subfolder, which is the test split; drop --test-fraction`);
  const testFraction = opts.testFraction ?? 0.1;
  if (!listing.testFolder && !(testFraction > 0 && testFraction < 1))
    throw new ConfigError('test-fraction', `must be between 0 and 1 (exclusive), got ${testFraction}`);
  for (const [field, v] of [
    ['height', opts.height],
    ['width', opts.width],
  ] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 1 && v <= 4096)) throw new ConfigError(field, `must be an integer 1..4096, got ${v}`);
  }

  const problems: ImageFolderProblem[] = [...listing.problems];
  const failed = new Set<string>();
  // The target shape: given, or the first readable image's (which every image must then share: see checkInto).
  let shape = { height: opts.height, width: opts.width, channels: opts.channels };
  let first: string | undefined;
  if (shape.height === undefined || shape.width === undefined || shape.channels === undefined) {
    for (const e of listing.entries) {
      throwIfAborted(hooks.signal, what);
      try {
        const info = await probeImage(join(listing.root, e.path), e.path);
        shape = { height: shape.height ?? info.height, width: shape.width ?? info.width, channels: shape.channels ?? info.channels };
        first = e.path;
        break;
      } catch (err) {
        problems.push(problemOf(err, e.path));
        failed.add(e.path);
      }
    }
  }
  const { height, width, channels } = shape;
  if (height === undefined || width === undefined || channels === undefined) {
    if (problems.length > 0 && !opts.skipInvalid) throw new InvalidImagesError(listing.root, problems);
    throw new DataError('IMAGE_FOLDER_EMPTY', 'has no readable image', listing.root);
  }
  if (height > 4096 || width > 4096) throw new ConfigError('size', `the first image is ${height}x${width}; give --size HxW (at most 4096x4096)`);
  if (!opts.skipInvalid) checkShardSizesAhead(listing, opts, { height, width, channels }, testFraction);
  const cap = scratchCap(opts);
  const spool = await openPixelSpool(height * width * channels, opts.scratchDir);
  try {
    const uniform = {
      size: opts.height === undefined || opts.width === undefined,
      channels: opts.channels === undefined,
      first: first ?? '',
    };
    return await checkInto(spool, listing, opts, hooks, { height, width, channels, fit, problems, failed, concurrency, testFraction, cap, uniform });
  } catch (err) {
    await spool.close();
    throw err;
  }
}

/**
 * The shard size check, before any image is decoded. Without skipInvalid
 * every listed image is in the dataset (or the import fails on the invalid
 * ones anyway), so the split sizes are known now: a folder whose shards
 * would be too big is refused at once, not after decoding all of it.
 */
function checkShardSizesAhead(
  listing: ImageFolderListing,
  opts: ImageImportOptions,
  shape: { height: number; width: number; channels: number },
  testFraction: number,
): void {
  let train = listing.entries.filter((e) => e.split === 'train').length;
  let test = listing.entries.length - train;
  if (!listing.testFolder) {
    test = Math.max(1, Math.round(train * testFraction));
    train -= test;
  }
  const meta = { dataset: opts.name, version: '0'.repeat(16) };
  // Stratified folds differ in size by at most one: fold 0 is a largest.
  checkShardSize(
    'fold-0.cvcs',
    shardBytes(shape, Math.ceil(Math.max(0, train) / Math.max(1, opts.folds)), { ...meta, split: 'train', fold: 0 }),
    opts.maxShardBytes,
  );
  checkShardSize('test.cvcs', shardBytes(shape, test, { ...meta, split: 'test' }), opts.maxShardBytes);
}

/** The decode loop and splits of checkImageFolder, the pixels going into `spool`. */
async function checkInto(
  spool: PixelSpool,
  listing: ImageFolderListing,
  opts: ImageImportOptions,
  hooks: ImageImportHooks,
  o: {
    height: number;
    width: number;
    channels: 1 | 3;
    fit: ImageFit;
    problems: ImageFolderProblem[];
    failed: ReadonlySet<string>;
    concurrency: number;
    testFraction: number;
    cap: number;
    /** Which of the first image's size and channels (`first`) stand for absent options: every image must have them. */
    uniform: { size: boolean; channels: boolean; first: string };
  },
): Promise<ImageFolderPlan> {
  const what = `importing ${listing.root}`;
  const { height, width, channels, fit, problems, failed, concurrency, testFraction, cap, uniform } = o;
  const probe = uniform.size || uniform.channels;
  const shapes = new ShapeTally(uniform, { height, width, channels });
  const spoolable = Math.floor(cap / (height * width * channels));
  const digests = new Map<string, string>();
  const decode = { height, width, channels, fit };
  const source = createHash('sha256');
  source.update(`image-folder;${height}x${width}x${channels};fit=${fit};classes=${JSON.stringify(listing.classNames)};`);
  const slots = new Map<string, number>();
  const valid: ImageFolderEntry[] = [];
  const total = listing.entries.length;
  let done = 0;
  const results = mapOrdered(
    listing.entries,
    concurrency,
    async (e) => {
      if (failed.has(e.path)) return { e, pixels: undefined, info: undefined, problem: undefined };
      try {
        if (!probe) return { e, pixels: await decodeImage(join(listing.root, e.path), decode, e.path), info: undefined, problem: undefined };
        const { pixels, info } = await decodeImageWithInfo(join(listing.root, e.path), decode, e.path);
        return { e, pixels, info, problem: undefined };
      } catch (err) {
        return { e, pixels: undefined, info: undefined, problem: problemOf(err, e.path) };
      }
    },
    hooks.signal,
    what,
  );
  for await (const { e, pixels, info, problem } of results) {
    done++;
    hooks.onProgress?.('check', done, total);
    if (problem !== undefined) problems.push(problem);
    if (pixels === undefined) continue;
    if (info !== undefined) shapes.add(e.path, info);
    source.update(`${e.split}\0${e.label}\0${e.path}\0`);
    source.update(pixels);
    if (spool.count < spoolable) slots.set(e.path, await spool.append(pixels));
    else digests.set(e.path, sha(pixels));
    valid.push(e);
  }
  await spool.finish();
  if (problems.length > 0 && !opts.skipInvalid) throw new InvalidImagesError(listing.root, problems);
  for (const p of problems) hooks.onSkip?.(p);
  if (valid.length === 0) throw new DataError('IMAGE_FOLDER_EMPTY', `has no valid image (${problems.length} invalid file(s) skipped)`, listing.root);
  shapes.check(listing.root);

  // The splits, each in path order (a record's source index is its place here).
  let train = valid.filter((e) => e.split === 'train');
  let test = valid.filter((e) => e.split === 'test');
  let testFrom: ImageFolderInfo['test'] = { from: 'folder' };
  /** Whether the held-out share differs from what imports before the leave-one-per-class rule chose. */
  let leaveOneChanged = false;
  if (!listing.testFolder) {
    const labels = Uint8Array.from(train, (e) => e.label);
    const want = Math.max(1, Math.round(train.length * testFraction));
    if (train.length - want < opts.folds)
      throw new ConfigError(
        'folds',
        `${train.length} valid image(s) leave ${train.length - want} for training after the test split, fewer than ${opts.folds} folds`,
      );
    // The test fraction never takes a class's only (or last) image: every class keeps one for training.
    const most = maxSubsetLeavingOne(labels);
    if (want > most)
      throw new ConfigError(
        'test-fraction',
        `a test fraction of ${testFraction} holds out ${want} of ${train.length} image(s), but only ${most} can go while each of the ${labels.length - most} classes keeps a training image: add images, lower --test-fraction or give a test/ folder`,
      );
    const kept = stratifiedSubset(labels, want, opts.seed, { leaveOnePerClass: true });
    // Imports made before this rule took a class's last image; where the rule changes the split, the
    // version changes too (same data and settings, other content must not share a version).
    const legacy = stratifiedSubset(labels, want, opts.seed);
    leaveOneChanged = kept.length !== legacy.length || kept.some((v, i) => v !== legacy[i]);
    const held = new Set(kept);
    test = train.filter((_, i) => held.has(i));
    train = train.filter((_, i) => !held.has(i));
    testFrom = { from: 'fraction', fraction: testFraction };
  }
  if (test.length === 0) throw new DataError('IMAGE_FOLDER_INVALID', 'test/ holds no valid image', listing.root);
  if (train.length === 0) throw new DataError('IMAGE_FOLDER_EMPTY', 'has no valid training image (outside test/)', listing.root);
  // Stratified folds; for an unlabeled folder (one label) this is a seeded random split into equal folds.
  const indices = stratifiedKFold(
    Uint8Array.from(train, (e) => e.label),
    opts.folds,
    opts.seed,
  );

  const shardMeta = { dataset: opts.name, version: '0'.repeat(16) };
  indices.forEach((f, i) => checkShardSize(`fold-${i}.cvcs`, shardBytes(o, f.length, { ...shardMeta, split: 'train', fold: i }), opts.maxShardBytes));
  checkShardSize('test.cvcs', shardBytes(o, test.length, { ...shardMeta, split: 'test' }), opts.maxShardBytes);

  const sourceSha256 = source.digest('hex');
  const test_ = testFrom.from === 'folder' ? 'folder' : `fraction=${testFrom.fraction}`;
  const version = createHash('sha256')
    .update(`${sourceSha256}:k=${opts.folds}:scheme=stratified:seed=${opts.seed}:test=${test_}${leaveOneChanged ? ':leave-one-per-class' : ''}`)
    .digest('hex')
    .slice(0, 16);
  return {
    listing,
    name: opts.name,
    version,
    sourceSha256,
    height,
    width,
    channels,
    fit,
    folds: { k: opts.folds, seed: opts.seed, indices },
    train,
    test,
    testFrom,
    skipped: problems,
    concurrency,
    spool,
    slots,
    digests,
    close: () => spool.close(),
  };
}

/**
 * The write pass: reads the pixels the check pass decoded (no image file is
 * read again) fold by fold, and streams each fold's shard, the test shard
 * and the two sources files through `sink`. Memory is one shard chunk plus
 * the records in flight. The dataset is exactly what the check pass hashed
 * into the version, even if a file changes meanwhile. Returns the manifest
 * (the caller stores it last, so a stopped import leaves no visible
 * version); the plan is closed when this returns or throws.
 */
export async function writeImageFolder(plan: ImageFolderPlan, sink: ObjectSink, hooks: ImageImportHooks = {}): Promise<DatasetManifest> {
  try {
    return await writePlan(plan, sink, hooks);
  } finally {
    await plan.close();
  }
}

async function writePlan(plan: ImageFolderPlan, sink: ObjectSink, hooks: ImageImportHooks): Promise<DatasetManifest> {
  const { listing } = plan;
  const what = `importing ${listing.root}`;
  const decode = { height: plan.height, width: plan.width, channels: plan.channels, fit: plan.fit };
  const numClasses = listing.labeled ? listing.classNames.length : 1;
  const total = plan.train.length + plan.test.length;
  let done = 0;
  const records = (list: readonly ImageFolderEntry[], order: ArrayLike<number>) =>
    mapOrdered(
      Array.from(order),
      plan.concurrency,
      async (i) => {
        const e = list[i] as ImageFolderEntry;
        const slot = plan.slots.get(e.path);
        const digest = plan.digests.get(e.path);
        let pixels: Uint8Array;
        if (slot !== undefined) pixels = await plan.spool.read(slot);
        else if (digest !== undefined) {
          pixels = await decodeImage(join(listing.root, e.path), decode, e.path);
          if (sha(pixels) !== digest) throw new DataError('IMAGE_CHANGED', 'changed while it was being imported; import again', e.path);
        } else throw new DataError('IMAGE_FOLDER_INVALID', 'is in the plan but was not checked', e.path);
        done++;
        hooks.onProgress?.('write', done, total);
        return { index: i, label: e.label, pixels };
      },
      hooks.signal,
      what,
    );
  const shards: ShardEntry[] = [];
  const meta = { dataset: plan.name, version: plan.version };
  for (let f = 0; f < plan.folds.indices.length; f++) {
    throwIfAborted(hooks.signal, what);
    const fold = plan.folds.indices[f] as Int32Array;
    const name = `fold-${f}.cvcs`;
    const written = await sink(name, shardChunksFrom(plan, fold.length, { ...meta, split: 'train', fold: f }, records(plan.train, fold)));
    const labels = Uint8Array.from(fold, (i) => (plan.train[i] as ImageFolderEntry).label);
    shards.push({ name, split: 'train', fold: f, count: fold.length, ...written, classCounts: classHistogram(labels, numClasses) });
  }
  throwIfAborted(hooks.signal, what);
  const testOrder = Int32Array.from(plan.test.keys());
  const written = await sink('test.cvcs', shardChunksFrom(plan, plan.test.length, { ...meta, split: 'test' }, records(plan.test, testOrder)));
  const testLabels = Uint8Array.from(plan.test, (e) => e.label);
  shards.push({ name: 'test.cvcs', split: 'test', count: plan.test.length, ...written, classCounts: classHistogram(testLabels, numClasses) });
  const sourcesFile = async (split: 'train' | 'test', list: readonly ImageFolderEntry[]): Promise<SourcesEntry> => {
    const name = sourcesName(split);
    const r = await sink(name, [
      encodeSources(
        split,
        list.map((e) => e.path),
      ),
    ]);
    return { name, count: list.length, ...r };
  };
  const sources: DatasetSources = { train: await sourcesFile('train', plan.train), test: await sourcesFile('test', plan.test) };
  throwIfAborted(hooks.signal, what);
  return {
    format: 'cvc-dataset',
    formatVersion: 1,
    dataset: plan.name,
    version: plan.version,
    sourceSha256: plan.sourceSha256,
    height: plan.height,
    width: plan.width,
    channels: plan.channels,
    numClasses,
    classNames: listing.labeled ? listing.classNames : ['unlabeled'],
    folds: { k: plan.folds.k, scheme: 'stratified', seed: plan.folds.seed, limit: null },
    shards,
    sources,
    imageFolder: { labeled: listing.labeled, fit: plan.fit, test: plan.testFrom, skipped: plan.skipped.length },
  };
}

/**
 * The sizes and channels of a folder's images where the first image's stand
 * for an absent `--size` / `--channels`: one of another size or kind would
 * silently take the first one's (a photo of 3000x2000 first made every
 * 64x64 icon 3000x2000), so a mix is refused, naming an image of each.
 */
class ShapeTally {
  private readonly sizes = new Map<string, { count: number; example: string }>();
  private readonly kinds = new Map<1 | 3, { count: number; example: string }>();

  constructor(
    private readonly uniform: { size: boolean; channels: boolean; first: string },
    private readonly target: { height: number; width: number; channels: 1 | 3 },
  ) {}

  add(path: string, info: ImageInfo): void {
    const tally = <K>(m: Map<K, { count: number; example: string }>, key: K): void => {
      const seen = m.get(key);
      if (seen) seen.count++;
      else m.set(key, { count: 1, example: path });
    };
    if (this.uniform.size) tally(this.sizes, `${info.height}x${info.width}`);
    if (this.uniform.channels) tally(this.kinds, info.channels);
  }

  /** Throws a ConfigError (`size`, then `channels`) when the images are not all of the first one's. */
  check(root: string): void {
    const list = (m: Map<string, { count: number; example: string }>, first: string): string =>
      [...m]
        .sort(([a], [b]) => (a === first ? -1 : b === first ? 1 : (m.get(b)?.count ?? 0) - (m.get(a)?.count ?? 0)))
        .slice(0, 4)
        .map(([k, v]) => `${k} (${v.count}, e.g. ${v.example})`)
        .join(', ');
    const firstSize = `${this.target.height}x${this.target.width}`;
    if (this.sizes.size > 1)
      throw new ConfigError(
        'size',
        `the images of ${root} are not all one size, and without --size every image would take the first one's (${this.uniform.first}, ${firstSize}): ` +
          `${list(this.sizes, firstSize)}${this.sizes.size > 4 ? `, and ${this.sizes.size - 4} more sizes` : ''}; give --size HxW (each image is resized to it by --fit)`,
      );
    const word = (c: 1 | 3): string => (c === 1 ? 'greyscale' : 'colour');
    if (this.kinds.size > 1) {
      const named = new Map([...this.kinds].map(([c, v]) => [word(c), v]));
      throw new ConfigError(
        'channels',
        `the images of ${root} are not all greyscale or all colour, and without --channels every image would be converted to the first one's (${this.uniform.first}, ${word(this.target.channels)}): ` +
          `${list(named, word(this.target.channels))}; give --channels 1 (greyscale) or 3 (RGB)`,
      );
    }
  }
}
