import { deriveSeed } from '@cvc/core';
import { tf } from '@cvc/tfjs-runtime';
import { decoderBlocks, decoderDense, type Activation, type BatchNormPlace, type Init, type ResolvedModelConfig } from './model-config.js';
import { NearestUpConv2D, upConvSaves } from './up-conv.js';

/** The full autoencoder and its encoder, which shares the autoencoder's layers. */
export interface Autoencoder {
  readonly name: string;
  readonly config: ResolvedModelConfig;
  readonly model: tf.LayersModel;
  readonly encoder: tf.LayersModel;
}

function initializer(kind: Init, seed: number): tf.serialization.Serializable {
  if (kind === 'he-normal') return tf.initializers.heNormal({ seed });
  if (kind === 'he-uniform') return tf.initializers.heUniform({ seed });
  return tf.initializers.glorotUniform({ seed });
}

/**
 * Builds the autoencoder a (resolved) model config describes. Layer names are
 * fixed by position so checkpoints map weights by name: `enc_conv{i}`,
 * `enc_bn{i}`, `enc_act{i}` (batch-norm before the activation), `enc_pool{i}`,
 * `enc_flatten`, `enc_flatten_{act}`, `enc_dense{i}`, `code`, `dec_dense{i}`
 * (the last one projects back to the encoder's feature map), `dec_reshape`,
 * `dec_up{i}` (before decoder block i+1, unless a nearest up-sampling is
 * computed inside the block's convolution, a NearestUpConv2D that keeps the
 * Conv2D's weights: up-conv.ts), `dec_conv{i}`, `dec_bn{i}`,
 * `dec_act{i}`, `reconstruction`. Convolutions are stride-s 'same' with bias.
 * The seed presets build exactly the seed's layers (SEED-MODELS.md).
 * `seed` makes initialisation reproducible; `fuseUpsample: false` keeps
 * every up-sampling as its own layer (the same function, more work).
 */
export function buildAutoencoder(config: ResolvedModelConfig, opts: { name?: string; seed?: number; fuseUpsample?: boolean } = {}): Autoencoder {
  const name = opts.name ?? 'custom';
  const seed = opts.seed ?? 42;
  let n = 0;
  const init = (): tf.serialization.Serializable => initializer(config.init, deriveSeed(seed, n++));
  const { height, width, channels } = config.input;
  const input = tf.input({ name: 'image', shape: [height, width, channels] });
  let x: tf.SymbolicTensor = input;
  const apply = (l: tf.layers.Layer): void => {
    x = l.apply(x) as tf.SymbolicTensor;
  };
  const bn = (id: string): tf.layers.Layer => tf.layers.batchNormalization({ name: id, momentum: 0.99, epsilon: 1e-3 });
  /** A stride-s 'same' convolution; after a nearest up-sampling by `up` that upConvSaves, the pair as one NearestUpConv2D. */
  const conv = (id: string, filters: number, kernel: number, strides: number, activation: Activation, up = 1): tf.layers.Layer =>
    up > 1
      ? new NearestUpConv2D({ name: id, filters, kernelSize: kernel, upsample: up, activation, kernelInitializer: init() })
      : tf.layers.conv2d({ name: id, filters, kernelSize: kernel, strides, padding: 'same', activation, kernelInitializer: init() as never, useBias: true });
  const dense = (id: string, units: number, activation: Activation): tf.layers.Layer =>
    tf.layers.dense({ name: id, units, activation, kernelInitializer: init() as never });
  /** conv -> activation -> BN (after), conv -> BN -> activation (before) or conv -> activation (none). */
  const block = (prefix: 'enc' | 'dec', i: number, filters: number, kernel: number, stride: number, act: Activation, place: BatchNormPlace, up = 1): void => {
    if (place === 'before') {
      apply(conv(`${prefix}_conv${i}`, filters, kernel, stride, 'linear', up));
      apply(bn(`${prefix}_bn${i}`));
      if (act !== 'linear') apply(tf.layers.activation({ name: `${prefix}_act${i}`, activation: act }));
      return;
    }
    apply(conv(`${prefix}_conv${i}`, filters, kernel, stride, act, up));
    if (place === 'after') apply(bn(`${prefix}_bn${i}`));
  };

  // Encoder: conv blocks, flatten, dense layers, the code.
  let h = height;
  let w = width;
  for (const [i, b] of config.encoder.entries()) {
    block('enc', i + 1, b.filters, b.kernel, b.stride, b.activation, b.batchNorm);
    if (b.pool > 1) apply(tf.layers.maxPooling2d({ name: `enc_pool${i + 1}`, poolSize: b.pool, strides: b.pool }));
    h = h / b.stride / b.pool;
    w = w / b.stride / b.pool;
  }
  const last = config.encoder[config.encoder.length - 1]?.filters ?? 1;
  apply(tf.layers.flatten({ name: 'enc_flatten' }));
  if (config.flattenActivation !== 'linear')
    apply(tf.layers.activation({ name: `enc_flatten_${config.flattenActivation}`, activation: config.flattenActivation }));
  for (const [i, units] of config.dense.entries()) apply(dense(`enc_dense${i + 1}`, units, config.denseActivation));
  apply(dense('code', config.codeSize, config.codeActivation));
  const code = x;

  // Decoder: dense layers, the projection back to the feature map, blocks with up-sampling, the reconstruction.
  const hidden = decoderDense(config);
  for (const [i, units] of hidden.entries()) apply(dense(`dec_dense${i + 1}`, units, config.denseActivation));
  // seed-cifar named its projection dec_dense2 (it shared seed-mnist's code path); its checkpoints keep that name.
  // With hidden decoder layers that name could clash, so it applies only where seed-cifar had none.
  const projection = config.naming === 'seed-cifar' && hidden.length === 0 ? 'dec_dense2' : `dec_dense${hidden.length + 1}`;
  apply(dense(projection, h * w * last, config.flattenActivation === 'linear' ? 'linear' : config.flattenActivation));
  apply(tf.layers.reshape({ name: 'dec_reshape', targetShape: [h, w, last] }));
  for (const [j, b] of decoderBlocks(config).entries()) {
    // Nearest up-sampling before a convolution it saves work for is computed inside that convolution (up-conv.ts).
    const fuse = opts.fuseUpsample !== false && b.upsample > 1 && config.upsample === 'nearest' && upConvSaves(b.upsample, b.kernel);
    if (b.upsample > 1 && !fuse) apply(tf.layers.upSampling2d({ name: `dec_up${j}`, size: [b.upsample, b.upsample], interpolation: config.upsample }));
    block('dec', j + 1, b.filters, b.kernel, 1, b.activation, b.batchNorm, fuse ? b.upsample : 1);
  }
  apply(conv('reconstruction', channels, config.outputKernel, 1, config.outputActivation));
  const model = tf.model({ name: `${name}-autoencoder`, inputs: input, outputs: x });
  const encoder = tf.model({ name: `${name}-encoder`, inputs: input, outputs: code });
  return { name, config, model, encoder };
}

/** Parameter counts: trainable, non-trainable and all. */
export function countParams(model: tf.LayersModel): { trainable: number; nonTrainable: number; total: number } {
  const count = (ws: tf.LayerVariable[]): number => ws.reduce((a, w) => a + w.shape.reduce<number>((p, d) => p * (d ?? 1), 1), 0);
  const trainable = count(model.trainableWeights);
  const nonTrainable = count(model.nonTrainableWeights);
  return { trainable, nonTrainable, total: trainable + nonTrainable };
}
