import { deriveSeed } from '@cvc/core';
import { tf } from '@cvc/tfjs-runtime';
import { MODEL_SHAPES, type ModelName, type Upsample } from './spec.js';

/** The full autoencoder and its encoder, which shares the autoencoder's layers. */
export interface Autoencoder {
  readonly name: ModelName;
  readonly model: tf.LayersModel;
  readonly encoder: tf.LayersModel;
}

/**
 * Builds `seed-mnist` or `seed-cifar` exactly as SEED-MODELS.md lists them:
 * conv (stride 1, same, glorot-uniform, bias) -> ReLU -> batch-norm blocks,
 * 2x2 max-pooling and up-sampling, dense bottleneck. Layer names are fixed so
 * checkpoints map weights by name. `seed` makes initialisation reproducible.
 */
export function buildAutoencoder(name: ModelName, opts: { upsample?: Upsample; seed?: number } = {}): Autoencoder {
  const shape = MODEL_SHAPES[name];
  const upsample = opts.upsample ?? 'nearest';
  const seed = opts.seed ?? 42;
  let n = 0;
  const init = (): ReturnType<typeof tf.initializers.glorotUniform> => tf.initializers.glorotUniform({ seed: deriveSeed(seed, n++) });
  const conv = (id: string, filters: number, k: number, activation: 'relu'): tf.layers.Layer =>
    tf.layers.conv2d({ name: id, filters, kernelSize: k, strides: 1, padding: 'same', activation, kernelInitializer: init(), useBias: true });
  const bn = (id: string): tf.layers.Layer => tf.layers.batchNormalization({ name: id, momentum: 0.99, epsilon: 1e-3 });
  const dense = (id: string, units: number, activation: 'relu' | 'linear'): tf.layers.Layer =>
    tf.layers.dense({ name: id, units, activation, kernelInitializer: init() });
  const pool = (id: string): tf.layers.Layer => tf.layers.maxPooling2d({ name: id, poolSize: 2, strides: 2 });
  const up = (id: string): tf.layers.Layer => tf.layers.upSampling2d({ name: id, size: [2, 2], interpolation: upsample });

  const s = shape.height / 4;
  const flat = 8 * s * s;
  const input = tf.input({ name: 'image', shape: [shape.height, shape.width, shape.channels] });
  let x: tf.SymbolicTensor = input;
  const apply = (l: tf.layers.Layer): void => {
    x = l.apply(x) as tf.SymbolicTensor;
  };
  // Encoder: three conv blocks, flatten, ReLU, dense bottleneck.
  apply(conv('enc_conv1', 32, 7, 'relu'));
  apply(bn('enc_bn1'));
  apply(pool('enc_pool1'));
  apply(conv('enc_conv2', 16, 5, 'relu'));
  apply(bn('enc_bn2'));
  apply(pool('enc_pool2'));
  apply(conv('enc_conv3', 8, 3, 'relu'));
  apply(bn('enc_bn3'));
  apply(tf.layers.flatten({ name: 'enc_flatten' }));
  apply(tf.layers.activation({ name: 'enc_flatten_relu', activation: 'relu' }));
  if (name === 'seed-mnist') {
    apply(dense('enc_dense1', 128, 'relu'));
    apply(dense('code', shape.codeSize, 'linear'));
  } else {
    apply(dense('code', shape.codeSize, 'linear'));
  }
  const code = x;
  // Decoder: dense back to the 8-channel map, then conv blocks with up-sampling.
  if (name === 'seed-mnist') apply(dense('dec_dense1', 128, 'relu'));
  apply(dense('dec_dense2', flat, 'relu'));
  apply(tf.layers.reshape({ name: 'dec_reshape', targetShape: [s, s, 8] }));
  apply(conv('dec_conv1', 8, 3, 'relu'));
  apply(bn('dec_bn1'));
  apply(up('dec_up1'));
  apply(conv('dec_conv2', 16, 5, 'relu'));
  apply(bn('dec_bn2'));
  apply(up('dec_up2'));
  apply(conv('dec_conv3', 32, 7, 'relu'));
  apply(conv('reconstruction', shape.channels, 3, 'relu'));
  const model = tf.model({ name: `${name}-autoencoder`, inputs: input, outputs: x });
  const encoder = tf.model({ name: `${name}-encoder`, inputs: input, outputs: code });
  return { name, model, encoder };
}

/** Parameter counts: trainable, non-trainable and all. */
export function countParams(model: tf.LayersModel): { trainable: number; nonTrainable: number; total: number } {
  const count = (ws: tf.LayerVariable[]): number => ws.reduce((a, w) => a + w.shape.reduce<number>((p, d) => p * (d ?? 1), 1), 0);
  const trainable = count(model.trainableWeights);
  const nonTrainable = count(model.nonTrainableWeights);
  return { trainable, nonTrainable, total: trainable + nonTrainable };
}
