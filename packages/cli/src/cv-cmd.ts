import { availableParallelism } from 'node:os';
import { basename, resolve } from 'node:path';
import { createJsonLogger, silentLogger } from '@cvc/core';
import { FOLD_SCHEMES } from '@cvc/data';
import { runSpecSchema, type CvSummary } from '@cvc/model';
import { BACKEND_CHOICES } from '@cvc/tfjs-runtime';
import type { CliEnv } from './env.js';
import { choiceOpt, intOpt, parse, positiveInt } from './args.js';
import { trainingFlags } from './run-spec-flags.js';
import { MODEL_FLAG_OPTIONS, modelFromFlags } from './model-flags.js';
import { UsageError } from './errors.js';
import { num, pm, table } from './format.js';
import { runLocalCv } from './cv-local.js';

export function renderSummary(s: CvSummary): string {
  const hasCos = s.cosine !== undefined;
  const rows = s.folds.map((f) => [
    String(f.fold),
    String(f.bestEpoch),
    num(f.metrics.train.loss),
    num(f.metrics.val.loss),
    num(f.metrics.test.loss),
    ...(hasCos ? [num(f.metrics.train.mse), num(f.metrics.val.mse), num(f.metrics.test.mse), num(f.metrics.test.cosine ?? Number.NaN)] : []),
  ]);
  const header = ['fold', 'best epoch', 'train loss', 'val loss', 'test loss', ...(hasCos ? ['train mse', 'val mse', 'test mse', 'test cosine'] : [])];
  const lines = [table(header, rows), ''];
  lines.push(`mean +- std over ${s.folds.length} folds (best-checkpoint evaluations):`);
  lines.push(`  train loss  ${pm(s.loss.train)}`);
  lines.push(`  val loss    ${pm(s.loss.val)}`);
  lines.push(`  test loss   ${pm(s.loss.test)}`);
  if (s.cosine) {
    lines.push(`  test mse    ${pm(s.mse.test)}`);
    lines.push(`  test cosine ${pm(s.cosine.test)}`);
  }
  const best = s.folds.find((f) => f.fold === s.bestFold);
  lines.push(`best fold: ${s.bestFold} (val loss ${num(best?.metrics.val.loss ?? Number.NaN)})`);
  return lines.join('\n') + '\n';
}

/** `cvc cv --local ...` */
export async function cvCommand(argv: string[], env: CliEnv, signal?: AbortSignal): Promise<number> {
  const { values } = parse(
    argv,
    {
      local: { type: 'boolean' },
      dataset: { type: 'string' },
      ...MODEL_FLAG_OPTIONS,
      folds: { type: 'string' },
      epochs: { type: 'string' },
      'batch-size': { type: 'string' },
      limit: { type: 'string' },
      'fold-scheme': { type: 'string' },
      seed: { type: 'string' },
      'learning-rate': { type: 'string' },
      backend: { type: 'string' },
      threads: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'boolean' },
      verbose: { type: 'boolean' },
    },
    'cv',
  );
  if (!values['local']) throw new UsageError('cv runs in one process with --local; cluster runs are submitted with `cvc run submit`');
  const dataset = values['dataset'];
  if (typeof dataset !== 'string') throw new UsageError('cv needs --dataset NAME|PATH');
  const choice = await modelFromFlags(values, 'cv');
  const model = choice.model;
  const limit = intOpt(values, 'limit', undefined, positiveInt);
  // Unset flags take the run-spec schema's defaults: the trainer's own.
  const flags = trainingFlags(values);
  const spec = runSpecSchema.parse({ model, ...flags });
  // A path is named by its last part (`./photos-ds/` gives runs/MODEL-photos-ds, not runs/MODEL-._photos-ds_).
  const datasetName = dataset.includes('/') ? basename(resolve(dataset)) : dataset;
  const out = typeof values['out'] === 'string' ? values['out'] : `runs/${model}-${datasetName.replace(/[^A-Za-z0-9_.-]+/g, '_')}`;
  const logger = values['verbose'] ? createJsonLogger('debug') : silentLogger;
  const result = await runLocalCv(
    {
      dataset,
      model,
      ...(choice.config ? { modelConfig: choice.config } : {}),
      ...(typeof values['model-config'] === 'string' ? { modelConfigFile: values['model-config'] } : {}),
      ...(choice.upsample ? { upsample: choice.upsample } : {}),
      // Unset: 5 for a built-in dataset, an import's own count.
      ...(flags.folds !== undefined ? { folds: flags.folds } : {}),
      epochs: spec.epochs,
      batchSize: spec.batchSize,
      seed: spec.seed,
      ...(values['fold-scheme'] !== undefined ? { scheme: choiceOpt(values, 'fold-scheme', FOLD_SCHEMES, 'stratified') } : {}),
      ...(limit !== undefined ? { limit } : {}),
      learningRate: spec.learningRate,
      out,
      backend: choiceOpt(values, 'backend', BACKEND_CHOICES, 'auto'),
      wasmThreads: intOpt(values, 'threads', Math.min(64, availableParallelism()), positiveInt),
      ...(signal ? { signal } : {}),
    },
    env,
    logger,
  );
  if (values['json']) {
    env.stdout.write(
      JSON.stringify(
        { out: result.outDir, encoder: result.encoderDir, backend: result.backend.name, datasetVersion: result.datasetVersion, ...result.summary },
        null,
        2,
      ) + '\n',
    );
  } else {
    env.stdout.write(`\n${renderSummary(result.summary)}results in ${result.outDir}; the best fold's encoder in ${result.encoderDir}\n`);
  }
  return 0;
}
