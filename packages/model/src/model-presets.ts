import { modelConfigSchema, type Init, type LossName, type ModelConfigInput, type ResolvedModelConfig, type Upsample } from './model-config.js';

/**
 * Model names a run spec takes: the seed's two autoencoders (fixed input
 * shapes), `cae` (a generic convolutional autoencoder from a few parameters,
 * taking the dataset's shape) and `custom` (a config given in full).
 */
export const MODEL_NAMES = ['seed-mnist', 'seed-cifar', 'cae', 'custom'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

const seedBlocks = [
  { filters: 32, kernel: 7, pool: 2 },
  { filters: 16, kernel: 5, pool: 2 },
  { filters: 8, kernel: 3 },
];

/** seed-mnist (SEED-MODELS.md): 28x28x1 in, 10-unit code, 148,515 trainable parameters. */
export const SEED_MNIST: ModelConfigInput = {
  input: { height: 28, width: 28, channels: 1 },
  encoder: seedBlocks,
  dense: [128],
  codeSize: 10,
  loss: 'mse',
};

/** seed-cifar (SEED-MODELS.md): 32x32x3 in, 128-unit code, 180,371 trainable parameters, MSE + (1 - cosine). */
export const SEED_CIFAR: ModelConfigInput = {
  input: { height: 32, width: 32, channels: 3 },
  encoder: seedBlocks,
  codeSize: 128,
  loss: 'mse-cosine',
  naming: 'seed-cifar',
};

/** The parameters of the `cae` preset (the `--model cae` flags). */
export interface CaeParams {
  /** Filters of each encoder block; every block but the last max-pools 2x2 (default 32,64,128). */
  readonly filters?: readonly number[];
  /** Kernel size of every convolution (default 3). */
  readonly kernel?: number;
  /** Code size (default 32). */
  readonly codeSize?: number;
  /** Hidden dense layers between the feature map and the code (default none). */
  readonly dense?: readonly number[];
  readonly init?: Init | 'he';
  readonly loss?: LossName;
  readonly outputActivation?: 'relu' | 'sigmoid' | 'linear';
  readonly upsample?: Upsample;
}

export const CAE_DEFAULTS = { filters: [32, 64, 128], kernel: 3, codeSize: 32 } as const;

/** The `cae` preset's config (no input shape: it takes the dataset's). Values are checked by the schema, not here. */
export function caeConfig(p: CaeParams = {}): ModelConfigInput {
  const filters = p.filters ?? CAE_DEFAULTS.filters;
  const kernel = p.kernel ?? CAE_DEFAULTS.kernel;
  return {
    encoder: filters.map((f, i) => ({ filters: f, kernel, pool: i < filters.length - 1 ? 2 : 1 })),
    codeSize: p.codeSize ?? CAE_DEFAULTS.codeSize,
    ...(p.dense ? { dense: [...p.dense] } : {}),
    ...(p.init ? { init: p.init } : {}),
    ...(p.loss ? { loss: p.loss } : {}),
    ...(p.outputActivation ? { outputActivation: p.outputActivation } : {}),
    ...(p.upsample ? { upsample: p.upsample } : {}),
  };
}

/**
 * The config a model name stands for when no config is given: the seed
 * presets (with `upsample`/`loss` overrides, as old run specs and checkpoints
 * set them) and `cae` with its defaults; undefined for `custom`.
 */
export function presetConfig(model: ModelName, o: { upsample?: Upsample | undefined; loss?: LossName | undefined } = {}): ModelConfigInput | undefined {
  const base = model === 'seed-mnist' ? SEED_MNIST : model === 'seed-cifar' ? SEED_CIFAR : model === 'cae' ? caeConfig() : undefined;
  if (!base) return undefined;
  return { ...base, ...(o.upsample ? { upsample: o.upsample } : {}), ...(o.loss ? { loss: o.loss } : {}) };
}

/** A seed preset's full config (input shape included), with the old specs' overrides. */
export function seedPreset(model: 'seed-mnist' | 'seed-cifar', o: { upsample?: Upsample; loss?: LossName } = {}): ResolvedModelConfig {
  return modelConfigSchema.parse(presetConfig(model, o)) as ResolvedModelConfig;
}
