import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, pathExists, type Logger } from '@cvc/core';
import {
  concatImages,
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

export interface LocalCvOptions {
  readonly dataset: string;
  readonly model: ModelName;
  /** The network (absent: the preset `model` names); its input shape is the dataset's. */
  readonly modelConfig?: ModelConfigInput;
  readonly folds: number;
  readonly epochs: number;
  readonly batchSize: number;
  readonly seed: number;
  readonly scheme: FoldScheme;
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
 * another: imports the dataset into fold shards under OUT/dataset, then
 * trains each fold from its verified shards. Re-running with the same OUT
 * and settings skips finished folds and resumes an interrupted one from its
 * last per-epoch checkpoint.
 */
export async function runLocalCv(o: LocalCvOptions, env: CliEnv, logger: Logger): Promise<LocalCvResult> {
  const ds = await loadDataset(o.dataset, env);
  const given = o.modelConfig ?? presetConfig(o.model, o.upsample ? { upsample: o.upsample } : {});
  if (!given) throw new ConfigError('model', `${o.model} needs a model config (--model-config FILE)`);
  const shape = { height: ds.train.height, width: ds.train.width, channels: ds.train.channels };
  const fit = fitModelConfig(given, shape);
  if (!fit.ok) {
    throw new ConfigError(
      fit.field === 'input' && !o.modelConfig ? 'model' : `model_config${fit.field ? `.${fit.field}` : ''}`,
      `${fit.message}${fit.field === 'input' ? ` (model ${o.model}, dataset ${ds.name})` : ''}`,
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
    return await crossValidate(o, config, ds, backend, progress);
  } finally {
    progress.stop();
  }
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
async function crossValidate(o: LocalCvOptions, config: TrainConfig, ds: Dataset, backend: BackendInfo, progress: Progress): Promise<LocalCvResult> {
  progress.log(
    `backend: ${backend.name} (${backend.provider}${backend.threads && backend.threads > 1 ? `, ${backend.threads} threads` : ''}${backend.conv ? `, ${backend.conv} convolutions` : ''})`,
  );

  const runFile = join(o.out, 'run.json');
  const prev = (await pathExists(runFile)) ? (JSON.parse(await readFile(runFile, 'utf8')) as unknown) : undefined;
  const refuse = (diff: readonly string[]): ConfigError =>
    new ConfigError('out', `${o.out} holds a run with different settings (${diff.join('; ')}); choose another --out or delete it`);
  // Before the dataset is imported into OUT/dataset: a refused run must not rewrite the shards the earlier one trains on.
  if (prev !== undefined) {
    const early = localRunDifferences(prev, { model: o.model, dataset: ds.name, datasetVersion: '', folds: o.folds, scheme: o.scheme, config }, [
      'datasetVersion',
    ]);
    if (early.length > 0) throw refuse(early);
  }
  const dataDir = join(o.out, 'dataset');
  // Deterministic: the same data and settings write the same shards and manifest again.
  const manifest = await importDataset(
    ds,
    { folds: o.folds, scheme: o.scheme, seed: o.seed, ...(o.limit !== undefined ? { limit: o.limit } : {}) },
    directorySink(dataDir),
  );
  await writeManifest(dataDir, manifest);
  const stored = await readManifestFile(dataDir);
  const { folds, test } = await loadShards(dataDir, stored);
  progress.log(
    `dataset: ${ds.name} version ${manifest.version}, ${o.folds} folds (${o.scheme}) of ${folds.map((f) => f.count).join('/')} images, ${test.count} test images`,
  );

  const runSpec: LocalRunSpec = { model: o.model, dataset: ds.name, datasetVersion: manifest.version, folds: o.folds, scheme: o.scheme, config };
  if (prev !== undefined) {
    const diff = localRunDifferences(prev, runSpec);
    if (diff.length > 0) throw refuse(diff);
  } else {
    await mkdir(o.out, { recursive: true });
    await writeJson(runFile, runSpec);
  }

  const results: FoldSummary[] = [];
  for (let k = 0; k < o.folds; k++) {
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
  await writeJson(join(o.out, 'summary.json'), { model: o.model, dataset: ds.name, datasetVersion: manifest.version, config, ...summary });
  return { summary, outDir: o.out, backend, datasetVersion: manifest.version };
}
