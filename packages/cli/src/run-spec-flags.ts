import type { RunSpec } from '@cvc/proto';
import { runSpecSchema } from '@cvc/model';
import { floatOpt, intOpt } from './args.js';
import { UsageError } from './errors.js';
import { MODEL_FLAG_OPTIONS, modelFromFlags } from './model-flags.js';

/** The training flags of `cvc run submit` and `cvc cv --local`; an unset flag is undefined. */
export interface TrainingFlags {
  readonly folds?: number | undefined;
  readonly epochs?: number | undefined;
  readonly batchSize?: number | undefined;
  readonly learningRate?: number | undefined;
  readonly seed?: number | undefined;
}

const field = runSpecSchema.shape;

/** The parseArgs options of a run spec (`cvc run submit`, and the base spec of `cvc sweep submit`). */
export const RUN_SPEC_FLAG_OPTIONS = {
  cluster: { type: 'string' },
  dataset: { type: 'string' },
  ...MODEL_FLAG_OPTIONS,
  folds: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  'learning-rate': { type: 'string' },
  seed: { type: 'string' },
  name: { type: 'string' },
  'dataset-version': { type: 'string' },
} as const;

/**
 * `--folds`, `--epochs`, `--batch-size`, `--learning-rate` and `--seed`, each
 * parsed strictly and checked with the run-spec schema's own field (the
 * coordinator's and the trainer's bounds), so `--epochs -3` or
 * `--learning-rate abc` is a usage error naming the flag. Unset flags stay
 * undefined: the schema's defaults apply where the spec is resolved.
 */
export function trainingFlags(values: Record<string, unknown>): TrainingFlags {
  return {
    folds: intOpt(values, 'folds', undefined, field.folds),
    epochs: intOpt(values, 'epochs', undefined, field.epochs),
    batchSize: intOpt(values, 'batch-size', undefined, field.batchSize),
    learningRate: floatOpt(values, 'learning-rate', field.learningRate),
    seed: intOpt(values, 'seed', undefined, field.seed),
  };
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/**
 * The RunSpec of `cvc run submit` from its flags. Numeric fields the user did
 * not set are left unset (the coordinator fills the defaults); a set one is
 * sent as given, so `--seed 0` sends 0. The model comes from `--model`,
 * `--model-config FILE` or the `--model cae` flags (see modelFromFlags); a
 * config travels as `modelConfigJson`, resolved against the dataset by the
 * coordinator. `command` names the command in messages (`sweep submit` for a
 * sweep's base spec).
 */
export async function runSpecFromFlags(values: Record<string, unknown>, command = 'run submit'): Promise<RunSpec> {
  if (typeof values['dataset'] !== 'string') throw new UsageError(`${command} needs --dataset NAME`);
  if (values['dataset'].includes('/'))
    throw new UsageError(
      `${command} --dataset takes the name of a dataset imported into the cluster, not a path (${values['dataset']}): ` +
        `import a folder of images with cvc dataset import FOLDER --name NAME and give --dataset NAME; an import written with --out DIR trains locally with cvc cv --local --dataset DIR`,
    );
  const choice = await modelFromFlags(values, command);
  const t = trainingFlags(values);
  return {
    name: str(values['name']),
    dataset: values['dataset'],
    model: choice.model,
    modelConfigJson: choice.config ? JSON.stringify(choice.config) : '',
    ...(t.folds !== undefined ? { folds: t.folds } : {}),
    ...(t.epochs !== undefined ? { epochs: t.epochs } : {}),
    ...(t.batchSize !== undefined ? { batchSize: t.batchSize } : {}),
    ...(t.learningRate !== undefined ? { learningRate: t.learningRate } : {}),
    ...(t.seed !== undefined ? { seed: t.seed } : {}),
    // A config carries its up-sampling (--upsample is merged into it).
    upsample: choice.config ? '' : (choice.upsample ?? ''),
    datasetVersion: str(values['dataset-version']),
  };
}
