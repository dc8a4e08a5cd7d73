import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveSeed } from '@cvc/core';
import { initBackend, tf } from '@cvc/tfjs-runtime';
import {
  buildAutoencoder,
  caeConfig,
  computeLoss,
  countParams,
  decodeCheckpoint,
  describeConfigIssue,
  fitModelConfig,
  FoldTrainer,
  modelConfigSchema,
  readEncoderModelConfig,
  resolveTrainConfig,
  seedPreset,
  type ResolvedModelConfig,
} from './index.js';

await initBackend('wasm');

/** The builder before model configs existed (build.ts at da7d252), kept to hold the presets to it. */
function legacyBuild(name: 'seed-mnist' | 'seed-cifar', seed = 42): tf.LayersModel {
  const shape = name === 'seed-mnist' ? { height: 28, width: 28, channels: 1, codeSize: 10 } : { height: 32, width: 32, channels: 3, codeSize: 128 };
  let n = 0;
  const init = (): ReturnType<typeof tf.initializers.glorotUniform> => tf.initializers.glorotUniform({ seed: deriveSeed(seed, n++) });
  const conv = (id: string, filters: number, k: number): tf.layers.Layer =>
    tf.layers.conv2d({ name: id, filters, kernelSize: k, strides: 1, padding: 'same', activation: 'relu', kernelInitializer: init(), useBias: true });
  const bn = (id: string): tf.layers.Layer => tf.layers.batchNormalization({ name: id, momentum: 0.99, epsilon: 1e-3 });
  const dense = (id: string, units: number, activation: 'relu' | 'linear'): tf.layers.Layer =>
    tf.layers.dense({ name: id, units, activation, kernelInitializer: init() });
  const pool = (id: string): tf.layers.Layer => tf.layers.maxPooling2d({ name: id, poolSize: 2, strides: 2 });
  const up = (id: string): tf.layers.Layer => tf.layers.upSampling2d({ name: id, size: [2, 2], interpolation: 'nearest' });
  const s = shape.height / 4;
  const input = tf.input({ name: 'image', shape: [shape.height, shape.width, shape.channels] });
  let x: tf.SymbolicTensor = input;
  const apply = (l: tf.layers.Layer): void => {
    x = l.apply(x) as tf.SymbolicTensor;
  };
  apply(conv('enc_conv1', 32, 7));
  apply(bn('enc_bn1'));
  apply(pool('enc_pool1'));
  apply(conv('enc_conv2', 16, 5));
  apply(bn('enc_bn2'));
  apply(pool('enc_pool2'));
  apply(conv('enc_conv3', 8, 3));
  apply(bn('enc_bn3'));
  apply(tf.layers.flatten({ name: 'enc_flatten' }));
  apply(tf.layers.activation({ name: 'enc_flatten_relu', activation: 'relu' }));
  if (name === 'seed-mnist') apply(dense('enc_dense1', 128, 'relu'));
  apply(dense('code', shape.codeSize, 'linear'));
  if (name === 'seed-mnist') apply(dense('dec_dense1', 128, 'relu'));
  apply(dense('dec_dense2', 8 * s * s, 'relu'));
  apply(tf.layers.reshape({ name: 'dec_reshape', targetShape: [s, s, 8] }));
  apply(conv('dec_conv1', 8, 3));
  apply(bn('dec_bn1'));
  apply(up('dec_up1'));
  apply(conv('dec_conv2', 16, 5));
  apply(bn('dec_bn2'));
  apply(up('dec_up2'));
  apply(conv('dec_conv3', 32, 7));
  apply(conv('reconstruction', shape.channels, 3));
  return tf.model({ inputs: input, outputs: x });
}

const layerSummary = (m: tf.LayersModel): string[] =>
  m.layers.map((l) => `${l.name} ${l.getClassName()} ${JSON.stringify(l.outputShape)} ${JSON.stringify(l.getConfig()['activation'] ?? '')}`);
const weightSummary = (m: tf.LayersModel): string[] => m.weights.map((w) => `${w.originalName} [${w.shape.join(',')}]`);

for (const name of ['seed-mnist', 'seed-cifar'] as const) {
  test(`${name} preset builds the old builder's layers, names, shapes, counts and initial weights`, () => {
    const old = legacyBuild(name, 7);
    // Unfused: the old builder's layer list; the default build computes the same
    // function with the up-sampling inside the next convolution (up-conv.test.ts).
    const net = buildAutoencoder(seedPreset(name), { name, seed: 7, fuseUpsample: false });
    assert.deepEqual(layerSummary(net.model), layerSummary(old));
    assert.deepEqual(weightSummary(net.model), weightSummary(old));
    assert.deepEqual(countParams(net.model), {
      trainable: name === 'seed-mnist' ? 148_515 : 180_371,
      nonTrainable: 160,
      total: name === 'seed-mnist' ? 148_675 : 180_531,
    });
    net.model.weights.forEach((w, i) => assert.deepEqual(w.read().dataSync(), old.weights[i]?.read().dataSync(), w.originalName));
    old.dispose();
    net.model.dispose();
  });
}

const custom: ResolvedModelConfig = modelConfigSchema.parse({
  input: { height: 64, width: 64, channels: 3 },
  encoder: [
    { filters: 8, kernel: 5, stride: 2 },
    { filters: 16, stride: 2, batchNorm: 'before' },
    { filters: 16, pool: 2, batchNorm: 'none', activation: 'elu' },
  ],
  dense: [24],
  codeSize: 6,
  upsample: 'bilinear',
  outputActivation: 'sigmoid',
  loss: 'bce',
}) as ResolvedModelConfig;

test('a custom config builds: strided convs, BN before the activation, its mirrored decoder rebuilds the input shape', () => {
  const net = buildAutoencoder(custom, { seed: 1 });
  assert.deepEqual(net.model.outputs[0]?.shape, [null, 64, 64, 3]);
  assert.deepEqual(net.encoder.outputs[0]?.shape, [null, 6]);
  assert.deepEqual(net.model.getLayer('enc_conv2').outputShape, [null, 16, 16, 16]);
  assert.equal(net.model.getLayer('enc_conv2').getConfig()['activation'], 'linear');
  assert.equal(net.model.getLayer('enc_act2').getConfig()['activation'], 'relu');
  assert.deepEqual(net.model.getLayer('dec_reshape').outputShape, [null, 8, 8, 16]);
  assert.equal(net.model.getLayer('dec_up1').getConfig()['interpolation'], 'bilinear');
  assert.equal(net.model.getLayer('reconstruction').getConfig()['activation'], 'sigmoid');
  const names = net.model.layers.map((l) => l.name);
  assert.ok(!names.includes('dec_bn3'), 'the mirror of the first block has no batch-norm');
  const y = net.model.predict(tf.zeros([2, 64, 64, 3])) as tf.Tensor;
  assert.deepEqual(y.shape, [2, 64, 64, 3]);
  y.dispose();
  net.model.dispose();
});

test('an explicit decoder is built as given', () => {
  const c = modelConfigSchema.parse({
    input: { height: 16, width: 16, channels: 1 },
    encoder: [{ filters: 4, pool: 4 }],
    codeSize: 3,
    decoder: {
      dense: [5],
      blocks: [
        { upsample: 2, filters: 6 },
        { upsample: 2, filters: 2, batchNorm: 'none' },
      ],
    },
  }) as ResolvedModelConfig;
  const net = buildAutoencoder(c);
  assert.deepEqual(net.model.getLayer('dec_conv1').outputShape, [null, 8, 8, 6]);
  assert.deepEqual(net.model.getLayer('dec_dense2').outputShape, [null, 4 * 4 * 4]);
  assert.deepEqual(net.model.outputs[0]?.shape, [null, 16, 16, 1]);
  net.model.dispose();
});

test('he initialisation differs from glorot and has He variance', () => {
  const base = caeConfig({ filters: [32, 32], kernel: 3, codeSize: 4 });
  const fit = (init: string): ResolvedModelConfig => {
    const r = fitModelConfig({ ...base, init }, { height: 8, width: 8, channels: 1 });
    assert.ok(r.ok);
    return r.config;
  };
  assert.equal(fit('he').init, 'he-normal');
  const g = buildAutoencoder(fit('glorot-uniform'), { seed: 3 });
  const h = buildAutoencoder(fit('he'), { seed: 3 });
  const k = (m: tf.LayersModel): Float32Array => m.getLayer('enc_conv2').getWeights()[0]?.dataSync() as Float32Array;
  assert.notDeepEqual(k(g.model), k(h.model));
  const variance = (a: Float32Array): number => a.reduce((s, v) => s + v * v, 0) / a.length;
  const fanIn = 3 * 3 * 32;
  const fanOut = 3 * 3 * 32;
  // glorot-uniform: 2 / (fanIn + fanOut); he-normal (truncated at 2 sd): about 2 / fanIn * 0.77.
  assert.ok(Math.abs(variance(k(g.model)) - 2 / (fanIn + fanOut)) < 0.2 * (2 / (fanIn + fanOut)), `glorot variance ${variance(k(g.model))}`);
  assert.ok(variance(k(h.model)) > 1.3 * variance(k(g.model)), `he variance ${variance(k(h.model))} vs glorot ${variance(k(g.model))}`);
  g.model.dispose();
  h.model.dispose();
});

test('bce matches a hand-computed value, with Keras-style clipping', () => {
  const x = tf.tensor4d([1, 0, 0.5, 1], [1, 2, 2, 1]);
  const y = tf.tensor4d([0.9, 0.2, 0.5, 1.5], [1, 2, 2, 1]);
  const eps = 1e-7;
  const term = (t: number, p: number): number => {
    const q = Math.min(Math.max(p, eps), 1 - eps);
    return -(t * Math.log(q) + (1 - t) * Math.log(1 - q));
  };
  const want = (term(1, 0.9) + term(0, 0.2) + term(0.5, 0.5) + term(1, 1.5)) / 4;
  const got = computeLoss('bce', y, x).loss.dataSync()[0] as number;
  assert.ok(Math.abs(got - want) < 1e-4, `bce ${got} vs ${want}`);
});

test('schema and fit errors name the field', () => {
  const square = { height: 28, width: 28, channels: 1 };
  const cases: [unknown, RegExp][] = [
    [{ encoder: [{ filters: 8 }, { filters: 0 }], codeSize: 4 }, /^encoder\[1\]\.filters: must be >= 1/],
    [{ encoder: [{ filters: 8 }], codeSize: 0 }, /^codeSize: must be >= 1/],
    [{ encoder: [{ filters: 8, activation: 'swish' }], codeSize: 2 }, /^encoder\[0\]\.activation: must be one of relu/],
    [{ encoder: [{ filters: 8 }], codeSize: 2, loss: 'hinge' }, /^loss: must be one of mse, mse-cosine, bce/],
    [{ encoder: [{ filters: 8 }], codeSize: 2, init: 'zeros' }, /^init: must be one of/],
    [
      {
        encoder: [
          { filters: 8, pool: 2 },
          { filters: 8, pool: 2 },
          { filters: 8, pool: 2 },
        ],
        codeSize: 2,
      },
      /^encoder\[2\]\.pool: pool 2 does not divide the 7x7 map/,
    ],
    [
      {
        encoder: [
          { filters: 8, pool: 4 },
          { filters: 8, pool: 4 },
          { filters: 8, pool: 4 },
        ],
        codeSize: 2,
      },
      /^encoder\[1\]\.pool: pool 4 does not divide/,
    ],
    [
      {
        encoder: [
          { filters: 8, pool: 28 },
          { filters: 8, kernel: 1, stride: 2 },
        ],
        codeSize: 2,
      },
      /^encoder\[1\]\.stride: stride 2 takes the 1x1 map below one pixel/,
    ],
    [{ encoder: [{ filters: 8, kernel: 29 }], codeSize: 2 }, /^encoder\[0\]\.kernel: kernel 29 is larger than the 28x28 map/],
    [
      { encoder: [{ filters: 8, pool: 2 }], codeSize: 2, decoder: { blocks: [{ filters: 4 }] } },
      /^decoder\.blocks: the up-sampling factors multiply to 1, the encoder downsamples by 2/,
    ],
    [
      { input: { height: 32, width: 32, channels: 3 }, encoder: [{ filters: 8 }], codeSize: 2 },
      /^input: the model takes 32x32x3 images, the dataset's are 28x28x1/,
    ],
    [{ encoder: [{ filters: 8 }], codeSize: 2, extra: 1 }, /Unrecognized key/],
  ];
  for (const [cfg, re] of cases) {
    const r = fitModelConfig(cfg as never, square);
    assert.equal(r.ok, false, JSON.stringify(cfg));
    if (!r.ok) assert.match(`${r.field}: ${r.message}`, re, JSON.stringify(cfg));
  }
  const bad = modelConfigSchema.safeParse({ encoder: [{ filters: -1 }], codeSize: 2 });
  assert.ok(!bad.success);
  assert.equal(describeConfigIssue(bad.error, 'spec.model_config'), 'spec.model_config.encoder[0].filters: must be >= 1');
  assert.ok(fitModelConfig(caeConfig({ filters: [32, 64, 128], codeSize: 32 }), { height: 40, width: 40, channels: 3 }).ok);
});

test('the train config resolves presets (old checkpoints) and refuses a config without input or a conflicting loss', () => {
  const old = resolveTrainConfig({ model: 'seed-cifar', upsample: 'bilinear' });
  assert.equal(old.modelConfig.codeSize, 128);
  assert.equal(old.modelConfig.upsample, 'bilinear');
  assert.equal(old.loss, 'mse-cosine');
  assert.throws(() => resolveTrainConfig({ model: 'custom' }), /modelConfig: required for model custom/);
  assert.throws(() => resolveTrainConfig({ model: 'cae', modelConfig: caeConfig() }), /modelConfig\.input: required/);
  assert.throws(() => resolveTrainConfig({ model: 'custom', modelConfig: custom, loss: 'mse' }), /loss: 'mse' conflicts with modelConfig\.loss 'bce'/);
});

test('checkpoints and exported encoders record the model config', async () => {
  const small = fitModelConfig(caeConfig({ filters: [4, 4], codeSize: 3, init: 'he', loss: 'bce', outputActivation: 'sigmoid' }), {
    height: 8,
    width: 8,
    channels: 1,
  });
  assert.ok(small.ok);
  const t = FoldTrainer.create({ model: 'cae', modelConfig: small.config, epochs: 1, batchSize: 4, seed: 2 });
  const bytes = await t.checkpoint();
  const state = decodeCheckpoint(bytes, 'ckpt');
  assert.deepEqual(state.config.modelConfig, small.config);
  const back = await FoldTrainer.resume(bytes, 'ckpt');
  assert.deepEqual(back.config.modelConfig, small.config);
  assert.deepEqual(
    back.getWeights().map((w) => w.name),
    t.getWeights().map((w) => w.name),
  );
  const dir = await mkdtemp(join(tmpdir(), 'cvc-enc-'));
  try {
    const { modelJson, weights } = await t.exportEncoder();
    await writeFile(join(dir, 'model.json'), modelJson);
    await writeFile(join(dir, 'weights.bin'), weights);
    assert.deepEqual(await readEncoderModelConfig(dir), { model: 'cae', modelConfig: small.config });
    // An encoder exported before configs existed: its preset from its input shape.
    const legacy = JSON.parse(modelJson) as Record<string, unknown>;
    delete legacy['userDefinedMetadata'];
    const seed = FoldTrainer.create({ model: 'seed-mnist', epochs: 1 });
    const exported = JSON.parse((await seed.exportEncoder()).modelJson) as Record<string, unknown>;
    delete exported['userDefinedMetadata'];
    await writeFile(join(dir, 'model.json'), JSON.stringify(exported));
    assert.equal((await readEncoderModelConfig(dir))?.model, 'seed-mnist');
    seed.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  t.dispose();
  back.dispose();
});
