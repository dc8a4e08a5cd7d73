import { stat } from 'node:fs/promises';
import { describeError, isFileNotFound, pathExists } from '@cvc/core';
import { join, resolve } from 'node:path';
import { DataError } from './errors.js';
import { readIdxFile } from './idx.js';
import { readCifarBatchFile } from './cifar.js';
import { concatImages, type ImageSet } from './image-set.js';
import { datasetInfo, IDX_FILES, CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH, type DatasetInfo } from './registry.js';

/** A dataset read from its canonical files and validated. */
export interface Dataset {
  /** Canonical name, or the directory's base name for a path. */
  readonly name: string;
  /** Directory the files were read from. */
  readonly dir: string;
  readonly format: 'idx' | 'cifar10';
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly train: ImageSet;
  readonly test: ImageSet;
  /** CIFAR-10 only: the five official training batches, in order (the seed's folds). */
  readonly trainBatches?: readonly ImageSet[];
}

export interface LocateOptions {
  /** Cache of downloaded datasets: `cacheDir/NAME` is searched (default ~/.cache/cvc/datasets). */
  readonly cacheDir: string;
  /** Extra directories searched first, as `DIR/NAME` (e.g. from CVC_DATA_DIR). */
  readonly dataDirs?: readonly string[];
}

async function findFile(dir: string, base: string): Promise<string | undefined> {
  for (const name of [base, `${base}.gz`]) if (await pathExists(join(dir, name))) return join(dir, name);
  return undefined;
}

/** Which format a directory holds, and where its CIFAR batches are, if any. */
async function detect(dir: string): Promise<{ format: 'idx' | 'cifar10'; dir: string } | undefined> {
  if (await findFile(dir, IDX_FILES.trainImages)) return { format: 'idx', dir };
  for (const d of [dir, join(dir, 'cifar-10-batches-bin')]) {
    if (await pathExists(join(d, CIFAR_TRAIN_BATCHES[0] as string))) return { format: 'cifar10', dir: d };
  }
  return undefined;
}

/**
 * Finds a dataset's directory: a known name is looked up in `dataDirs`, the
 * cache and its system directories (Debian's dataset-fashion-mnist); anything
 * else is a path. Throws a DataError that says where the files should go.
 */
export async function locateDataset(
  nameOrPath: string,
  opts: LocateOptions,
): Promise<{ name: string; dir: string; format: 'idx' | 'cifar10'; info?: DatasetInfo }> {
  const info = datasetInfo(nameOrPath);
  if (info !== undefined) {
    const candidates = [...(opts.dataDirs ?? []).map((d) => join(d, info.name)), join(opts.cacheDir, info.name), ...info.systemDirs];
    for (const c of candidates) {
      const found = await detect(c);
      if (found) return { name: info.name, ...found, info };
    }
    const hint = info.name === 'fashion-mnist' ? " or install Debian's dataset-fashion-mnist package," : '';
    throw new DataError(
      'DATASET_NOT_FOUND',
      `dataset '${info.name}' was not found in ${candidates.join(', ')}. Run 'cvc dataset download ${info.name}'${hint} or place ${info.downloads.map((d) => d.file).join(', ')} in ${join(opts.cacheDir, info.name)}`,
    );
  }
  const dir = resolve(nameOrPath);
  let isDir = false;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch (err) {
    if (!isFileNotFound(err))
      throw new DataError('FILE_UNREADABLE', `cannot read (${(err as NodeJS.ErrnoException).code ?? describeError(err)})`, dir, { cause: err });
    throw new DataError('DATASET_UNKNOWN', `'${nameOrPath}' is neither a known dataset (mnist, fashion-mnist, cifar-10) nor an existing directory`);
  }
  if (!isDir) throw new DataError('DATASET_UNKNOWN', `'${nameOrPath}' is not a directory; a dataset path is a directory of IDX files or CIFAR-10 batches`);
  const found = await detect(dir);
  if (!found) {
    throw new DataError(
      'DATASET_UNRECOGNISED',
      `no dataset files found: expected ${IDX_FILES.trainImages}[.gz] (IDX) or ${CIFAR_TRAIN_BATCHES[0]} (CIFAR-10 binary)`,
      dir,
    );
  }
  return { name: dir.split('/').pop() ?? dir, ...found };
}

async function readIdxPair(dir: string, imagesBase: string, labelsBase: string, numClasses: number): Promise<ImageSet> {
  const imagesPath = await findFile(dir, imagesBase);
  const labelsPath = await findFile(dir, labelsBase);
  if (!imagesPath) throw new DataError('FILE_MISSING', `missing ${imagesBase}[.gz]`, dir);
  if (!labelsPath) throw new DataError('FILE_MISSING', `missing ${labelsBase}[.gz]`, dir);
  const images = await readIdxFile(imagesPath, 3);
  const labels = await readIdxFile(labelsPath, 1);
  const [count, height, width] = images.dims as [number, number, number];
  if (labels.dims[0] !== count) {
    throw new DataError('IDX_COUNT_MISMATCH', `has ${labels.dims[0]} labels but ${imagesPath} has ${count} images`, labelsPath);
  }
  for (let i = 0; i < labels.data.length; i++) {
    const l = labels.data[i] as number;
    if (l >= numClasses) throw new DataError('IDX_BAD_LABEL', `label ${l} at index ${i} is out of range 0..${numClasses - 1}`, labelsPath);
  }
  return { images: images.data, labels: labels.data, count, height, width, channels: 1 };
}

/** Reads and validates a dataset by name or path. */
export async function loadDataset(nameOrPath: string, opts: LocateOptions): Promise<Dataset> {
  const loc = await locateDataset(nameOrPath, opts);
  const classNames = loc.info?.classNames ?? Array.from({ length: 10 }, (_, i) => String(i));
  const numClasses = classNames.length;
  let ds: Dataset;
  if (loc.format === 'idx') {
    const train = await readIdxPair(loc.dir, IDX_FILES.trainImages, IDX_FILES.trainLabels, numClasses);
    const test = await readIdxPair(loc.dir, IDX_FILES.testImages, IDX_FILES.testLabels, numClasses);
    if (train.height !== test.height || train.width !== test.width) {
      throw new DataError('SHAPE_MISMATCH', `train images are ${train.height}x${train.width} but test images are ${test.height}x${test.width}`, loc.dir);
    }
    ds = { name: loc.name, dir: loc.dir, format: 'idx', numClasses, classNames, train, test };
  } else {
    const trainBatches: ImageSet[] = [];
    for (const b of CIFAR_TRAIN_BATCHES) {
      const p = join(loc.dir, b);
      if (!(await pathExists(p))) throw new DataError('FILE_MISSING', `missing ${b}`, loc.dir);
      trainBatches.push(await readCifarBatchFile(p, numClasses));
    }
    const testPath = join(loc.dir, CIFAR_TEST_BATCH);
    if (!(await pathExists(testPath))) throw new DataError('FILE_MISSING', `missing ${CIFAR_TEST_BATCH}`, loc.dir);
    const test = await readCifarBatchFile(testPath, numClasses);
    ds = { name: loc.name, dir: loc.dir, format: 'cifar10', numClasses, classNames, train: concatImages(trainBatches), test, trainBatches };
  }
  if (loc.info && (ds.train.height !== loc.info.height || ds.train.width !== loc.info.width || ds.train.channels !== loc.info.channels)) {
    throw new DataError(
      'SHAPE_MISMATCH',
      `${loc.info.name} images must be ${loc.info.height}x${loc.info.width}x${loc.info.channels}, found ${ds.train.height}x${ds.train.width}x${ds.train.channels}`,
      loc.dir,
    );
  }
  return ds;
}
