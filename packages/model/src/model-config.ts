import { z } from 'zod';
import { describeIssue } from '@cvc/core';

/** Activations a layer may take (TensorFlow.js names). */
export const ACTIVATIONS = ['relu', 'linear', 'sigmoid', 'tanh', 'elu'] as const;
export type Activation = (typeof ACTIVATIONS)[number];
/** Reconstruction losses: mean squared error, MSE + (1 - cosine similarity), binary cross-entropy. */
export const LOSSES = ['mse', 'mse-cosine', 'bce'] as const;
export type LossName = (typeof LOSSES)[number];
export const UPSAMPLE_MODES = ['nearest', 'bilinear'] as const;
export type Upsample = (typeof UPSAMPLE_MODES)[number];
/** Weight initialisers: Keras' glorot-uniform (the seed's) or He/Kaiming (normal or uniform). */
export const INITS = ['glorot-uniform', 'he-normal', 'he-uniform'] as const;
export type Init = (typeof INITS)[number];
/** Where a block's batch-norm goes relative to its activation (the seed: after). */
export const BATCH_NORM_PLACES = ['after', 'before', 'none'] as const;
export type BatchNormPlace = (typeof BATCH_NORM_PLACES)[number];

const dim = z.number().int().min(1).max(16_384);
const activation = z.enum(ACTIVATIONS);
const kernel = z.number().int().min(1).max(64);
const factor = z.number().int().min(1).max(64);

/** An image shape: height x width x channels. */
export const inputShapeSchema = z.object({ height: dim, width: dim, channels: z.number().int().min(1).max(64) }).strict();
export type InputShape = z.output<typeof inputShapeSchema>;

/**
 * One encoder block: a 'same'-padded convolution (`stride` > 1 downsamples),
 * its activation, batch-norm before/after the activation or none, then an
 * optional max-pooling of `pool` x `pool` (1: none).
 */
export const encoderBlockSchema = z
  .object({
    filters: z.number().int().min(1).max(4096),
    kernel: kernel.default(3),
    stride: factor.default(1),
    activation: activation.default('relu'),
    batchNorm: z.enum(BATCH_NORM_PLACES).default('after'),
    pool: factor.default(1),
  })
  .strict();

/**
 * One decoder block: up-sampling by `upsample` (1: none) and then a
 * stride-1 'same' convolution with its activation and batch-norm.
 */
export const decoderBlockSchema = z
  .object({
    upsample: factor.default(1),
    filters: z.number().int().min(1).max(4096),
    kernel: kernel.default(3),
    activation: activation.default('relu'),
    batchNorm: z.enum(BATCH_NORM_PLACES).default('after'),
  })
  .strict();

/** A decoder given explicitly: dense layers after the code, then the blocks (the reshape target is the encoder's last feature map). */
export const decoderSchema = z
  .object({
    dense: z.array(dim).max(16).default([]),
    blocks: z.array(decoderBlockSchema).min(1).max(32),
  })
  .strict();

const initSchema = z.preprocess((v) => (v === 'he' || v === 'kaiming' ? 'he-normal' : v), z.enum(INITS));

const modelConfigObject = z
  .object({
    /** Image shape; filled from the dataset at submission when absent. */
    input: inputShapeSchema.optional(),
    encoder: z.array(encoderBlockSchema).min(1).max(32),
    /** Activation after flattening the encoder's last feature map ('linear': none). */
    flattenActivation: activation.default('relu'),
    /** Hidden dense layers between the flattened map and the code. */
    dense: z.array(dim).max(16).default([]),
    denseActivation: activation.default('relu'),
    codeSize: z.number().int().min(1).max(65_536),
    codeActivation: activation.default('linear'),
    /** 'mirror': the encoder reversed (its first block's mirror without batch-norm, as the seed), or an explicit decoder. */
    decoder: z.union([z.literal('mirror'), decoderSchema]).default('mirror'),
    init: initSchema.default('glorot-uniform'),
    upsample: z.enum(UPSAMPLE_MODES).default('nearest'),
    outputActivation: z.enum(['relu', 'sigmoid', 'linear']).default('relu'),
    outputKernel: kernel.default(3),
    loss: z.enum(LOSSES).default('mse'),
    /** Layer names of the seed presets that predate the generic builder (checkpoints map weights by name). */
    naming: z.enum(['generic', 'seed-cifar']).default('generic'),
  })
  .strict();

type Resolved = z.output<typeof modelConfigObject>;

/** One decoder block of the mirror of `encoder` (or the given decoder's blocks). */
export function decoderBlocks(c: Pick<Resolved, 'encoder' | 'decoder'>): z.output<typeof decoderBlockSchema>[] {
  if (c.decoder !== 'mirror') return c.decoder.blocks;
  return c.encoder
    .map((b, i) => ({
      upsample: b.stride * b.pool,
      filters: b.filters,
      kernel: b.kernel,
      activation: b.activation,
      batchNorm: i === 0 ? ('none' as const) : b.batchNorm,
    }))
    .reverse();
}

/** The hidden dense layers of the decoder (the mirror's: the encoder's, reversed). */
export function decoderDense(c: Pick<Resolved, 'dense' | 'decoder'>): number[] {
  return c.decoder === 'mirror' ? [...c.dense].reverse() : c.decoder.dense;
}

/**
 * Checks that the network fits its input: every kernel fits the map it
 * convolves, every stride and pooling divides the map exactly (so the decoder
 * can rebuild the size), no map shrinks below one pixel, and the decoder's
 * up-sampling rebuilds the input's size exactly.
 */
function checkGeometry(c: Resolved, ctx: z.RefinementCtx): void {
  const input = c.input;
  if (!input) return;
  let h = input.height;
  let w = input.width;
  for (const [i, b] of c.encoder.entries()) {
    const at = (key: string): (string | number)[] => ['encoder', i, key];
    if (b.kernel > Math.max(h, w)) {
      ctx.addIssue({ code: 'custom', path: at('kernel'), message: `kernel ${b.kernel} is larger than the ${h}x${w} map it convolves` });
      return;
    }
    for (const [key, f] of [
      ['stride', b.stride],
      ['pool', b.pool],
    ] as const) {
      if (f === 1) continue;
      if (h < f || w < f) {
        ctx.addIssue({ code: 'custom', path: at(key), message: `${key} ${f} takes the ${h}x${w} map below one pixel` });
        return;
      }
      if (h % f !== 0 || w % f !== 0) {
        ctx.addIssue({
          code: 'custom',
          path: at(key),
          message: `${key} ${f} does not divide the ${h}x${w} map, so the decoder cannot rebuild its size exactly`,
        });
        return;
      }
      h /= f;
      w /= f;
    }
  }
  const down = input.height / h;
  if (c.decoder !== 'mirror') {
    const up = c.decoder.blocks.reduce((p, b) => p * b.upsample, 1);
    if (up !== down) {
      ctx.addIssue({
        code: 'custom',
        path: ['decoder', 'blocks'],
        message: `the up-sampling factors multiply to ${up}, the encoder downsamples by ${down}: the decoder would not rebuild ${input.height}x${input.width}`,
      });
      return;
    }
    let s = Math.max(h, w);
    for (const [i, b] of c.decoder.blocks.entries()) {
      s *= b.upsample;
      if (b.kernel > s) {
        ctx.addIssue({ code: 'custom', path: ['decoder', 'blocks', i, 'kernel'], message: `kernel ${b.kernel} is larger than the ${s}x${s} map it convolves` });
        return;
      }
    }
  }
  if (c.outputKernel > Math.max(input.height, input.width)) {
    ctx.addIssue({ code: 'custom', path: ['outputKernel'], message: `kernel ${c.outputKernel} is larger than the ${input.height}x${input.width} output` });
    return;
  }
  const params = parameterCount(c, input.channels, h * w);
  if (params > MAX_PARAMETERS) {
    ctx.addIssue({
      code: 'custom',
      path: [],
      message: `the network would have ${params.toExponential(2)} weights, more than the ${MAX_PARAMETERS.toExponential(0)} a worker is given (fewer filters, a smaller code or more pooling)`,
    });
  }
}

/** The most weights a configuration may have (200 M, 800 MB of float32 before Adam's two moments): a larger one would exhaust a worker, attempt after attempt. */
export const MAX_PARAMETERS = 200_000_000;

/** Trainable weights of the network (convolutions, dense layers and biases; batch-norm's few left out), computed from the config alone. */
function parameterCount(c: Resolved, channels: number, bottleneckPixels: number): number {
  let n = 0;
  let cin = channels;
  for (const b of c.encoder) {
    n += b.kernel * b.kernel * cin * b.filters + b.filters;
    cin = b.filters;
  }
  const flat = bottleneckPixels * cin;
  let units = flat;
  for (const d of [...c.dense, c.codeSize, ...decoderDense(c), flat]) {
    n += units * d + d;
    units = d;
  }
  for (const b of decoderBlocks(c)) {
    n += b.kernel * b.kernel * cin * b.filters + b.filters;
    cin = b.filters;
  }
  return n + c.outputKernel * c.outputKernel * cin * channels + channels;
}

/**
 * A convolutional autoencoder: encoder blocks, flatten, dense layers, the code,
 * and a decoder (mirrored by default) ending in a convolution back to the
 * input's channels. Defaults are the seed's (glorot-uniform, ReLU output,
 * nearest up-sampling, MSE). With `input` set, the geometry is checked too.
 */
export const modelConfigSchema = modelConfigObject.superRefine(checkGeometry);

export type ModelConfigInput = z.input<typeof modelConfigSchema>;
/** A model config with every default filled in. */
export type ModelConfig = z.output<typeof modelConfigSchema>;
/** A model config with its input shape, ready to build. */
export type ResolvedModelConfig = ModelConfig & { readonly input: InputShape };

/** A zod issue path as a field name: `encoder[2].filters`. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((s, p) => (typeof p === 'number' ? `${s}[${p}]` : s === '' ? String(p) : `${s}.${String(p)}`), '');
}

/** At most this many problems of one config are listed; the rest are counted. */
export const MAX_CONFIG_ISSUES = 5;

/**
 * Every issue of a failed parse as `field: rule`, joined by `; ` (at most
 * MAX_CONFIG_ISSUES, then `; and N more problems`), so one try shows all
 * that is wrong with a config file (`encoder[0]: Unrecognized key: "strides";
 * outputActivation: must be one of relu, sigmoid, linear`).
 */
export function describeConfigIssue(error: z.ZodError, prefix = ''): string {
  return describeConfigIssues(error.issues, prefix);
}

/** `describeConfigIssue` over a list of issues (paths relative to the config; `prefix` goes before each). */
export function describeConfigIssues(issues: readonly z.core.$ZodIssue[], prefix = ''): string {
  if (issues.length === 0) return `${prefix || 'model config'}: invalid value`;
  const one = (issue: z.core.$ZodIssue): string => {
    const path = formatPath(issue.path);
    const field = prefix && path ? `${prefix}.${path}` : prefix || path || 'model config';
    return `${field}: ${describeIssue(issue)}`;
  };
  const shown = issues.slice(0, MAX_CONFIG_ISSUES).map(one);
  const more = issues.length - shown.length;
  return shown.join('; ') + (more > 0 ? `; and ${more} more problem${more === 1 ? '' : 's'}` : '');
}

const same = (a: InputShape, b: InputShape): boolean => a.height === b.height && a.width === b.width && a.channels === b.channels;
export const shapeText = (s: InputShape): string => `${s.height}x${s.width}x${s.channels}`;

/**
 * The config for images of `shape`: its own input shape must equal it (a
 * fixed preset), an absent one is filled in; then the geometry is checked.
 * Returns `field: rule` messages rather than throwing, so each caller raises
 * its own typed error (INVALID_ARGUMENT at the coordinator).
 */
export function fitModelConfig(
  config: ModelConfigInput,
  shape: InputShape,
): { ok: true; config: ResolvedModelConfig } | { ok: false; field: string; message: string } {
  const first = modelConfigSchema.safeParse(config);
  if (!first.success) return fail(first.error);
  if (first.data.input && !same(first.data.input, shape)) {
    return { ok: false, field: 'input', message: `the model takes ${shapeText(first.data.input)} images, the dataset's are ${shapeText(shape)}` };
  }
  const parsed = modelConfigSchema.safeParse({ ...first.data, input: shape });
  if (!parsed.success) return fail(parsed.error);
  return { ok: true, config: parsed.data as ResolvedModelConfig };
}

function fail(error: z.ZodError): { ok: false; field: string; message: string } {
  const issue = error.issues[0];
  return { ok: false, field: issue ? formatPath(issue.path) : '', message: issue ? describeIssue(issue) : 'invalid value' };
}
