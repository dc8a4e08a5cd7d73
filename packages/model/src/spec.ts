import { z } from 'zod';
import { resolveOptions } from '@cvc/core';
import { DEFAULT_FOLDS, foldCountSchema } from '@cvc/data';

import { LOSSES, UPSAMPLE_MODES, modelConfigSchema, type ResolvedModelConfig } from './model-config.js';
import { MODEL_NAMES, presetConfig } from './model-presets.js';

/**
 * What a seed may be: an unsigned 32-bit integer (the generators take
 * `seed | 0`, so a larger value would only alias a smaller one).
 */
export const seedSchema = z.number().int().min(0).max(0xffff_ffff);

// zod 4's z.number() refuses NaN and +-Infinity by itself (spec.test.ts
// holds it to that), so no field needs a separate finiteness check.
const trainConfigObject = z
  .object({
    /** A preset name; with `modelConfig` set, only the run's label (`custom` for a config file). */
    model: z.enum(MODEL_NAMES),
    /** The network; absent: the preset `model` names (old checkpoints and run specs have none). */
    modelConfig: modelConfigSchema.optional(),
    epochs: z.number().int().min(1).max(100_000).default(100),
    batchSize: z.number().int().min(1).max(65_536).default(32),
    learningRate: z.number().positive().max(1).default(1e-4),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    epsilon: z.number().positive().default(1e-7),
    /** The preset's loss override (old specs); a model config carries its own. */
    loss: z.enum(LOSSES).optional(),
    /** The preset's up-sampling override (old specs); a model config carries its own. */
    upsample: z.enum(UPSAMPLE_MODES).optional(),
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
 * Adam 1e-4 / 0.9 / 0.999 / 1e-7, batch 32, 100 epochs. The output always
 * has the resolved `modelConfig` (input shape included): the given one, or
 * the preset `model` names with the `upsample`/`loss` overrides; `loss` and
 * `upsample` then mirror the config's.
 */
export const trainConfigSchema = trainConfigObject.transform((c, ctx) => {
  let config = c.modelConfig;
  if (config) {
    for (const key of ['loss', 'upsample'] as const) {
      if (c[key] !== undefined && c[key] !== config[key]) {
        ctx.addIssue({ code: 'custom', path: [key], message: `'${c[key]}' conflicts with modelConfig.${key} '${config[key]}'` });
        return z.NEVER;
      }
    }
  } else {
    const preset = presetConfig(c.model, { upsample: c.upsample, loss: c.loss });
    const parsed = preset ? modelConfigSchema.safeParse(preset) : undefined;
    if (!parsed?.success) {
      ctx.addIssue({ code: 'custom', path: ['modelConfig'], message: `required for model ${c.model}` });
      return z.NEVER;
    }
    config = parsed.data;
  }
  if (!config.input) {
    ctx.addIssue({ code: 'custom', path: ['modelConfig', 'input'], message: "required: the dataset's image shape" });
    return z.NEVER;
  }
  const modelConfig = config as ResolvedModelConfig;
  return { ...c, modelConfig, loss: modelConfig.loss, upsample: modelConfig.upsample };
});
export type TrainConfigInput = z.input<typeof trainConfigSchema>;
export type TrainConfig = z.output<typeof trainConfigSchema>;

const INT32_MAX = 2 ** 31 - 1;

/**
 * The training fields of a run spec plus its fold count, derived from the
 * trainer's own schema: the same defaults and bounds, defined once. The seed
 * is an int32 on the wire (the worker trains fold k with seed + k, which the
 * trainer's seed range still holds); the fold count's bounds are the dataset
 * import's (`foldCountSchema`). Unset (undefined) fields take the defaults.
 * `modelConfig` is checked field by field here; its fit to the dataset (the
 * input shape and the geometry) is checked once the dataset is known.
 */
export const runSpecSchema = trainConfigObject
  .pick({ model: true, modelConfig: true, epochs: true, batchSize: true, learningRate: true, upsample: true, seed: true })
  .extend({
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
