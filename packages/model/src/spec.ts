import { z } from 'zod';
import { resolveOptions } from '@cvc/core';
import { DEFAULT_FOLDS, foldCountSchema } from '@cvc/data';

/** The seed's two autoencoders (SEED-MODELS.md). */
export const MODEL_NAMES = ['seed-mnist', 'seed-cifar'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];
export type LossName = 'mse' | 'mse-cosine';
export type Upsample = 'nearest' | 'bilinear';

export interface ModelShape {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** Encoder output size. */
  readonly codeSize: number;
  readonly defaultLoss: LossName;
}

export const MODEL_SHAPES: Readonly<Record<ModelName, ModelShape>> = {
  'seed-mnist': { height: 28, width: 28, channels: 1, codeSize: 10, defaultLoss: 'mse' },
  'seed-cifar': { height: 32, width: 32, channels: 3, codeSize: 128, defaultLoss: 'mse-cosine' },
};

/**
 * What a seed may be: an unsigned 32-bit integer (the generators take
 * `seed | 0`, so a larger value would only alias a smaller one).
 */
export const seedSchema = z.number().int().min(0).max(0xffff_ffff);

// zod 4's z.number() refuses NaN and +-Infinity by itself (spec.test.ts
// holds it to that), so no field needs a separate finiteness check.
const trainConfigObject = z
  .object({
    model: z.enum(MODEL_NAMES),
    epochs: z.number().int().min(1).max(100_000).default(100),
    batchSize: z.number().int().min(1).max(65_536).default(32),
    learningRate: z.number().positive().max(1).default(1e-4),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    epsilon: z.number().positive().default(1e-7),
    loss: z.enum(['mse', 'mse-cosine']).optional(),
    upsample: z.enum(['nearest', 'bilinear']).default('nearest'),
    /** Seeds weight initialisation and the batch order of every epoch. */
    seed: seedSchema.default(42),
    /**
     * Evaluate with zero-debiased batch-norm moving statistics: divide out the
     * (0, 1) initial values, as Adam does for its moments. After n training
     * steps the correction is momentum^n (0.99^n), so it vanishes at the seed's
     * scale (150,000 steps) and only fixes short runs, whose inference-mode
     * output otherwise collapses while the statistics warm up.
     */
    bnDebias: z.boolean().default(true),
    /** Batch size for evaluation passes (no effect on results). */
    evalBatchSize: z.number().int().min(1).default(256),
  })
  .strict();

/**
 * Everything that defines one fold's training. Defaults are the seed's:
 * Adam 1e-4 / 0.9 / 0.999 / 1e-7, batch 32, 100 epochs, nearest up-sampling,
 * MSE for seed-mnist and MSE + (1 - cosine) for seed-cifar.
 */
export const trainConfigSchema = trainConfigObject.transform((c) => ({ ...c, loss: c.loss ?? MODEL_SHAPES[c.model].defaultLoss }));

export type TrainConfigInput = z.input<typeof trainConfigSchema>;
export type TrainConfig = z.output<typeof trainConfigSchema>;

const INT32_MAX = 2 ** 31 - 1;

/**
 * The training fields of a run spec plus its fold count, derived from the
 * trainer's own schema: the same defaults and bounds, defined once. The seed
 * is an int32 on the wire (the worker trains fold k with seed + k, which the
 * trainer's seed range still holds); the fold count's bounds are the dataset
 * import's (`foldCountSchema`). Unset (undefined) fields take the defaults.
 */
export const runSpecSchema = trainConfigObject.pick({ model: true, epochs: true, batchSize: true, learningRate: true, upsample: true, seed: true }).extend({
  folds: foldCountSchema.default(DEFAULT_FOLDS),
  seed: trainConfigObject.shape.seed.refine((s) => s <= INT32_MAX, { message: `must be <= ${INT32_MAX} (a seed is an int32 on the wire)` }),
});

export type RunSpecInput = z.input<typeof runSpecSchema>;
/** A run spec's training fields and fold count with every default filled in. */
export type RunSpecFields = z.output<typeof runSpecSchema>;

/** Validates and fills in defaults; throws ConfigError naming the field. */
export function resolveTrainConfig(input: TrainConfigInput): TrainConfig {
  return resolveOptions(trainConfigSchema, input, 'train config');
}
