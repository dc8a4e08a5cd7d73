import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, pathExists, type Logger } from '@cvc/core';
import {
  concatImages,
  DataError,
  directorySink,
  type Dataset,
  importDataset,
  loadDataset,
  readManifestFile,
  readShardFile,
  writeManifest,
  type DatasetManifest,
  type FoldScheme,
  type ImageSet,
} from '@cvc/data';
import {
  FoldTrainer,
  fitModelConfig,
  presetConfig,
  resolveTrainConfig,
  runFold,
  summarizeFolds,
  type CvSummary,
  type FoldSummary,
  type ModelConfigInput,
  type ModelName,
  type TrainConfig,
  type TrainConfigInput,
  type Upsample,
} from '@cvc/model';
import { initBackend, type BackendChoice, type BackendInfo } from '@cvc/tfjs-runtime';
import type { CliEnv } from './env.js';
import { Progress } from './progress.js';
import { duration, num } from './format.js';
import { importedFromDirectory } from './imported-input.js';
import { writeLocalEncoder } from './local-encoder.js';

export interface LocalCvOptions {
  /**
   * A built-in dataset (name or directory of its files), split into folds
   * under OUT/dataset; or the directory of an import written by `cvc dataset
   * import ... --out DIR` (an image folder's, say), whose folds are used as
   * they are.
   */
  readonly dataset: string;
  readonly model: ModelName;
  /** The network (absent: the preset `model` names); its input shape is the dataset's. */
  readonly modelConfig?: ModelConfigInput;
  /** The file `modelConfig` was read from (`--model-config FILE`): errors of its fit to the dataset name it. */
  readonly modelConfigFile?: string;
  /** Folds: default 5; an import's own count (another is refused). */
  readonly folds?: number | undefined;
  readonly epochs: number;
  readonly batchSize: number;
  readonly seed: number;
  /** How a built-in dataset is split (default stratified); refused for an import, whose folds are fixed. */
  readonly scheme?: FoldScheme | undefined;
  /** A seeded, stratified subset of a built-in dataset; refused for an import. */
  readonly limit?: number;
  readonly out: string;
  readonly backend: BackendChoice;
  /** Threads of the wasm backend (default 1). */
  readonly wasmThreads?: number;
  /** Up-sampling of a seed preset (a config carries its own). */
  readonly upsample?: Upsample;
  readonly learningRate?: number;
  readonly signal?: AbortSignal;
}

export interface LocalCvResult {
  readonly summary: CvSummary;
  readonly outDir: string;
  /** OUT/encoder: the best fold's encoder, as `cvc encoder fetch` writes one. */
  readonly encoderDir: string;
  readonly backend: BackendInfo;
  readonly datasetVersion: string;
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(`${path}.tmp`, JSON.stringify(value, null, 2) + '\n');
  await rename(`${path}.tmp`, path);
}

/**
 * Loads every shard the manifest lists, verifying each one's size and both
 * checksums, and returns fold sets plus the test set.
 */
async function loadShards(dir: string, manifest: DatasetManifest): Promise<{ folds: ImageSet[]; test: ImageSet }> {
  const folds: ImageSet[] = [];
  let test: ImageSet | undefined;
  for (const entry of manifest.shards) {
    const shard = await readShardFile(dir, entry);
    if (entry.split === 'test') test = shard.set;
    else folds[entry.fold ?? folds.length] = shard.set;
  }
  if (!test) throw new ConfigError('dataset', `manifest in ${dir} has no test shard`);
  return { folds, test };
}

/**
 * Runs a whole K-fold cross-validation in this process, folds one after
 * another: imports a built-in dataset into fold shards under OUT/dataset (an
 * import directory's shards are read where they are), then trains each fold
 * from its verified shards and writes the best fold's encoder to
 * OUT/encoder. Re-running with the same OUT and settings skips finished
 * folds and resumes an interrupted one from its last per-epoch checkpoint.
 */
export async function runLocalCv(o: LocalCvOptions, env: CliEnv, logger: Logger): Promise<LocalCvResult> {
  const source = await localSource(o, env);
  const given = o.modelConfig ?? presetConfig(o.model, o.upsample ? { upsample: o.upsample } : {});
  if (!given) throw new ConfigError('model', `${o.model} needs a model config (--model-config FILE)`);
  const fit = fitModelConfig(given, source.shape);
  if (!fit.ok) {
    throw new ConfigError(
      fit.field === 'input' && !o.modelConfig
        ? 'model'
        : o.modelConfigFile !== undefined
          ? `${o.modelConfigFile}${fit.field ? `: ${fit.field}` : ''}`
          : `model_config${fit.field ? `.${fit.field}` : ''}`,
      `${fit.message}${fit.field === 'input' ? ` (model ${o.model}, dataset ${source.name})` : ''}${fitHint(o, fit.field, source.shape)}`,
    );
  }
  const config: TrainConfig = resolveTrainConfig({
    model: o.model,
    modelConfig: fit.config,
    epochs: o.epochs,
    batchSize: o.batchSize,
    seed: o.seed,
    ...(o.learningRate !== undefined ? { learningRate: o.learningRate } : {}),
  });
  const backend = await initBackend(o.backend, logger, { wasmThreads: o.wasmThreads ?? 1 });
  const progress = new Progress(env.stderr);
  try {
    return await crossValidate(o, config, source, backend, progress);
  } finally {
    progress.stop();
  }
}

/**
 * What to change when a model does not fit the dataset: a seed preset fixes its input (`--model cae` fits any
 * size); the `--model cae` flags pool 2x2 after every block but the last, so n blocks need sides divisible by 2^(n-1)
 * (and still larger than the kernel).
 */
function fitHint(o: LocalCvOptions, field: string, shape: { height: number; width: number }): string {
  if (field === 'input' && !o.modelConfig) return `; --model cae or --model-config FILE take the dataset's ${shape.height}x${shape.width}`;
  const blocks = o.model === 'cae' && o.modelConfigFile === undefined ? (o.modelConfig?.encoder?.length ?? 0) : 0;
  if (blocks > 1 && /^encoder\[\d+\]\.(pool|kernel)$/.test(field))
    return `; with --model cae every block but the last max-pools 2x2, so ${blocks} --filters need sides divisible by ${2 ** (blocks - 1)} (and larger than the kernel at the last): give fewer --filters, a smaller --kernel, or import the images with a larger --size`;
  return '';
}

/** Where a local run's folds come from: a built-in dataset to split, or an import's shards. */
interface LocalSource {
  readonly name: string;
  readonly shape: { height: number; width: number; channels: number };
  readonly folds: number;
  readonly scheme: FoldScheme;
  /** The shards' directory and manifest (imports the built-in dataset into `dataDir` first). */
  shards(dataDir: string): Promise<{ dir: string; manifest: DatasetManifest }>;
}

/**
 * The dataset of `o.dataset`: an import directory (manifest.json; its folds,
 * scheme and test split are fixed, so `--folds` must match and `--limit` /
 * `--fold-scheme` are refused) or a built-in dataset.
 */
async function localSource(o: LocalCvOptions, env: CliEnv): Promise<LocalSource> {
  const imported = await importedFromDirectory(o.dataset);
  if (imported) {
    const m = imported.manifest;
    const where = `${o.dataset} (dataset ${m.dataset} version ${m.version})`;
    if (o.folds !== undefined && o.folds !== m.folds.k)
      throw new ConfigError(
        'folds',
        `${where} was imported with ${m.folds.k} folds, not ${o.folds}: leave --folds out (or give ${m.folds.k}), or import it again with --folds ${o.folds}`,
      );
    if (o.limit !== undefined) throw new ConfigError('limit', `--limit applies to a built-in dataset; ${where} is an import, trained on as it is`);
    if (o.scheme !== undefined && o.scheme !== m.folds.scheme)
      throw new ConfigError('fold-scheme', `--fold-scheme applies to a built-in dataset; ${where} is an import, split ${m.folds.scheme}`);
    return {
      name: m.dataset,
      shape: { height: m.height, width: m.width, channels: m.channels },
      folds: m.folds.k,
      scheme: m.folds.scheme,
      shards: () => Promise.resolve({ dir: o.dataset, manifest: m }),
    };
  }
  let ds: Dataset;
  try {
    ds = await loadDataset(o.dataset, env);
  } catch (err) {
    // A folder of images lands here: it is imported first.
    if (err instanceof DataError && err.code === 'DATASET_UNRECOGNISED')
      throw new DataError(
        err.code,
        `${err.message}, nor an import's manifest.json; a folder of images is imported first (cvc dataset import ${o.dataset} --name NAME --out DIR) and then cross-validated with cvc cv --local --dataset DIR`,
        undefined,
        { cause: err },
      );
    throw err;
  }
  const folds = o.folds ?? 5;
  const scheme = o.scheme ?? 'stratified';
  return {
    name: ds.name,
    shape: { height: ds.train.height, width: ds.train.width, channels: ds.train.channels },
    folds,
    scheme,
    shards: async (dataDir) => {
      // Deterministic: the same data and settings write the same shards and manifest again.
      const manifest = await importDataset(ds, { folds, scheme, seed: o.seed, ...(o.limit !== undefined ? { limit: o.limit } : {}) }, directorySink(dataDir));
      await writeManifest(dataDir, manifest);
      return { dir: dataDir, manifest: await readManifestFile(dataDir) };
    },
  };
}

/** What `cvc cv --local` records in OUT/run.json. */
export interface LocalRunSpec {
  readonly model: string;
  readonly dataset: string;
  readonly datasetVersion: string;
  readonly folds: number;
  readonly scheme: FoldScheme;
  readonly config: TrainConfig;
}

/**
 * Whether a run.json written earlier (`prev`, parsed) holds the same run as
 * `next`. Its train config is resolved first, so one written before model
 * configs existed (no modelConfig, loss/upsample at the top level) still
 * matches the same settings today; an unresolvable one never matches.
 */
export function sameLocalRun(prev: unknown, next: LocalRunSpec): boolean {
  return localRunDifferences(prev, next).length === 0;
}

/** A setting's value in a message: numbers and names as they are, anything larger left out. */
const shown = (v: unknown): string => (typeof v === 'number' || typeof v === 'boolean' || (typeof v === 'string' && v.length <= 40) ? String(v) : 'other');

/**
 * The settings in which `prev` (a parsed run.json) differs from `next`, each
 * as `name: PREV there, NEXT now` (`folds: 2 there, 3 now`, `config.epochs`);
 * keys in `ignore` are not compared. Empty when they match.
 */
export function localRunDifferences(prev: unknown, next: LocalRunSpec, ignore: readonly (keyof LocalRunSpec)[] = []): string[] {
  if (typeof prev !== 'object' || prev === null) return ['run.json is not a run'];
  const p = prev as Partial<Record<keyof LocalRunSpec, unknown>>;
  let config: TrainConfig;
  try {
    config = resolveTrainConfig(p.config as TrainConfigInput);
  } catch (err) {
    if (err instanceof ConfigError) return [`its config cannot be read (${err.message})`];
    throw err;
  }
  const out: string[] = [];
  const differ = (name: string, a: unknown, b: unknown): void => {
    if (canonicalJson(a) !== canonicalJson(b)) out.push(`${name}: ${shown(a)} there, ${shown(b)} now`);
  };
  for (const k of ['model', 'dataset', 'datasetVersion', 'folds', 'scheme'] as const) if (!ignore.includes(k)) differ(k, p[k], next[k]);
  if (!ignore.includes('config')) {
    const prevConfig = config as unknown as Record<string, unknown>;
    const nextConfig = next.config as unknown as Record<string, unknown>;
    for (const k of [...new Set([...Object.keys(prevConfig), ...Object.keys(nextConfig)])].sort()) differ(`config.${k}`, prevConfig[k], nextConfig[k]);
  }
  return out;
}

/** JSON with every object's keys sorted, so two equal values compare equal whatever order their keys were set in. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : v,
  );
}

/** The folds of runLocalCv, one after another, drawing on `progress`. */
async function crossValidate(o: LocalCvOptions, config: TrainConfig, src: LocalSource, backend: BackendInfo, progress: Progress): Promise<LocalCvResult> {
  progress.log(
    `backend: ${backend.name} (${backend.provider}${backend.threads && backend.threads > 1 ? `, ${backend.threads} threads` : ''}${backend.conv ? `, ${backend.conv} convolutions` : ''})`,
  );

  const runFile = join(o.out, 'run.json');
  const prev = (await pathExists(runFile)) ? (JSON.parse(await readFile(runFile, 'utf8')) as unknown) : undefined;
  const refuse = (diff: readonly string[]): ConfigError =>
    new ConfigError('out', `${o.out} holds a run with different settings (${diff.join('; ')}); choose another --out or delete it`);
  // Before the dataset is imported into OUT/dataset: a refused run must not rewrite the shards the earlier one trains on.
  if (prev !== undefined) {
    const early = localRunDifferences(prev, { model: o.model, dataset: src.name, datasetVersion: '', folds: src.folds, scheme: src.scheme, config }, [
      'datasetVersion',
    ]);
    if (early.length > 0) throw refuse(early);
  }
  const { dir: dataDir, manifest } = await src.shards(join(o.out, 'dataset'));
  const { folds, test } = await loadShards(dataDir, manifest);
  progress.log(
    `dataset: ${src.name} version ${manifest.version}, ${src.folds} folds (${src.scheme}) of ${folds.map((f) => f.count).join('/')} images, ${test.count} test images`,
  );

  const runSpec: LocalRunSpec = { model: o.model, dataset: src.name, datasetVersion: manifest.version, folds: src.folds, scheme: src.scheme, config };
  if (prev !== undefined) {
    const diff = localRunDifferences(prev, runSpec);
    if (diff.length > 0) throw refuse(diff);
  } else {
    await mkdir(o.out, { recursive: true });
    await writeJson(runFile, runSpec);
  }

  const results: FoldSummary[] = [];
  for (let k = 0; k < src.folds; k++) {
    const foldDir = join(o.out, `fold-${k}`);
    const resultFile = join(foldDir, 'result.json');
    if (await pathExists(resultFile)) {
      const done = JSON.parse(await readFile(resultFile, 'utf8')) as FoldSummary;
      progress.log(`fold ${k}: already finished (best epoch ${done.bestEpoch}, val loss ${num(done.metrics.val.loss)})`);
      results.push(done);
      continue;
    }
    await mkdir(foldDir, { recursive: true });
    const train = concatImages(folds.filter((_, i) => i !== k));
    const val = folds[k] as ImageSet;
    const lastCkpt = join(foldDir, 'last.ckpt');
    const trainer = (await pathExists(lastCkpt))
      ? await FoldTrainer.resume(await readFile(lastCkpt), lastCkpt)
      : FoldTrainer.create({ ...config, seed: config.seed + k });
    if (trainer.epochsDone > 0) progress.log(`fold ${k}: resuming after epoch ${trainer.epochsDone} from ${lastCkpt}`);
    try {
      const result = await runFold(
        trainer,
        { train, val, test },
        {
          ...(o.signal ? { signal: o.signal } : {}),
          onBatch: (p) => {
            const eta = (p.totalImages - p.images) / Math.max(p.imagesPerSec, 1e-9);
            progress.set(`fold ${k}`, {
              label: `fold ${k} epoch ${p.epoch}/${p.epochs}`,
              value: p.images,
              total: p.totalImages,
              detail: `images  ${p.imagesPerSec.toFixed(0)} img/s  eta ${Number.isFinite(eta) ? duration(eta) : '-'}  loss ${num(p.loss)}`,
            });
          },
          onEpochEnd: async (r, t) => {
            // The epoch's line replaces its bar (a new bar starts with the next epoch).
            progress.remove(`fold ${k}`);
            progress.log(
              `fold ${k} epoch ${r.epoch}/${config.epochs}  loss ${num(r.loss)}  val_loss ${num(r.valLoss)}  ${r.imagesPerSec.toFixed(1)} img/s  ${r.seconds.toFixed(1)}s`,
            );
            await writeFile(`${lastCkpt}.tmp`, await t.checkpoint());
            await rename(`${lastCkpt}.tmp`, lastCkpt);
            await writeJson(join(foldDir, 'history.json'), t.epochHistory);
          },
          // Evaluation reports no batches: a line per split, not a bar stuck at 0/0.
          onEvaluate: (split) => {
            const images = ({ train: train.count, val: val.count, test: test.count } as Record<string, number>)[split];
            progress.remove(`fold ${k}`);
            progress.log(`fold ${k} evaluating the ${split} split${images === undefined ? '' : ` (${images} images)`}`);
          },
        },
      );
      await writeFile(join(foldDir, 'best.ckpt'), result.bestCheckpoint);
      await writeJson(join(foldDir, 'history.json'), result.history);
      const summary: FoldSummary = { fold: k, bestEpoch: result.bestEpoch, metrics: result.metrics };
      await writeJson(resultFile, summary);
      const m = result.metrics;
      progress.remove(`fold ${k}`);
      progress.log(`fold ${k} done: best epoch ${result.bestEpoch}  train ${num(m.train.loss)}  val ${num(m.val.loss)}  test ${num(m.test.loss)}`);
      results.push(summary);
    } finally {
      trainer.dispose();
    }
  }
  const summary = summarizeFolds(results);
  // The best fold's encoder, for `cvc embed` / `cvc cluster --encoder OUT/encoder`.
  const encoderDir = join(o.out, 'encoder');
  const best = results.find((r) => r.fold === summary.bestFold) as FoldSummary;
  await writeLocalEncoder(encoderDir, await readFile(join(o.out, `fold-${best.fold}`, 'best.ckpt')), {
    out: o.out,
    model: o.model,
    dataset: src.name,
    datasetVersion: manifest.version,
    fold: best,
    imageFolder: manifest.imageFolder,
  });
  progress.log(`encoder of fold ${best.fold} (lowest val loss) written to ${encoderDir}`);
  await writeJson(join(o.out, 'summary.json'), { model: o.model, dataset: src.name, datasetVersion: manifest.version, config, ...summary });
  return { summary, outDir: o.out, encoderDir, backend, datasetVersion: manifest.version };
}
