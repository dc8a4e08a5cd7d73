import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '@cvc/tfjs-runtime';
import { NearestUpConv2D } from './up-conv.js';
import { buildAutoencoder, countParams, modelConfigSchema, seedPreset, upConv2d, upConvPlan, upConvSaves, type ResolvedModelConfig } from './index.js';
import type { Activation } from './model-config.js';

await initBackend('wasm');

/** Largest |a - b| over max(1e-3, largest |b|): a relative error that tolerates near-zero references. */
function relErr(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => {
    const diff = tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] as number;
    const ref = tf.max(tf.abs(b)).dataSync()[0] as number;
    return diff / Math.max(1e-3, ref);
  });
}

test('the plan: 7x7 after 2x reads offsets -2..2 (4 per phase), 5x5 reads -1..1 in both phases, 3x3 saves nothing', () => {
  const p7 = upConvPlan(2, 7);
  assert.deepEqual([p7.lo, p7.hi, p7.ke, p7.mode], [-2, 2, 5, 'phases']);
  assert.deepEqual(p7.phases, [
    { lo: -2, hi: 1 },
    { lo: -1, hi: 2 },
  ]);
  const p5 = upConvPlan(2, 5);
  assert.deepEqual([p5.lo, p5.hi, p5.ke, p5.mode], [-1, 1, 3, 'combined']);
  assert.equal(upConvSaves(2, 7), true);
  assert.equal(upConvSaves(2, 5), true);
  assert.equal(upConvSaves(2, 3), false);
  assert.equal(upConvSaves(1, 7), false);
  // Every phase pair sums each original tap exactly once.
  for (const p of [p7, p5, upConvPlan(3, 5), upConvPlan(2, 4)]) {
    const per = p.k * p.k;
    for (let phase = 0; phase < p.s * p.s; phase++) {
      const col = new Float64Array(per);
      for (let t = 0; t < p.ke * p.ke; t++) for (let j = 0; j < per; j++) col[j] = (col[j] as number) + (p.gather[(t * p.s * p.s + phase) * per + j] as number);
      assert.ok(
        col.every((v) => v === 1),
        `s=${p.s} k=${p.k} phase ${phase}`,
      );
    }
  }
  assert.throws(() => upConvPlan(0, 3), RangeError);
});

/**
 * The reference: nearest up-sampling (by definition, each pixel tiled into an
 * s x s block: tfjs-backend-cpu's ResizeNearestNeighborGrad misplaces every
 * batch after the first), then the 'same' convolution, bias and activation.
 */
function reference(x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor1D, s: number, act: Activation): tf.Tensor4D {
  const [n, h, wd, c] = x.shape;
  const rows = tf.reshape(tf.tile(tf.reshape(x, [n * h, 1, wd, c]), [1, s, 1, 1]), [n * h * s, wd, 1, c]);
  const up = tf.reshape<tf.Rank.R4>(tf.tile(rows, [1, 1, s, 1]), [n, h * s, wd * s, c]);
  const y = tf.add(tf.conv2d(up, w, 1, 'same'), b);
  const f = { relu: tf.relu, sigmoid: tf.sigmoid, tanh: tf.tanh, elu: tf.elu, linear: (t: tf.Tensor) => t }[act];
  return f(y) as tf.Tensor4D;
}

const cases: { s: number; k: number; c: number; f: number; h: number; w: number; act: Activation }[] = [
  { s: 2, k: 7, c: 3, f: 8, h: 5, w: 6, act: 'relu' },
  { s: 2, k: 5, c: 4, f: 5, h: 4, w: 3, act: 'linear' },
  { s: 3, k: 5, c: 2, f: 4, h: 3, w: 4, act: 'sigmoid' },
  { s: 2, k: 4, c: 3, f: 3, h: 4, w: 4, act: 'tanh' },
  { s: 2, k: 7, c: 1, f: 1, h: 3, w: 3, act: 'elu' },
];

for (const backend of ['wasm', 'cpu']) {
  for (const cs of cases) {
    test(`${backend}: up-sampling x${cs.s} then a ${cs.k}x${cs.k} ${cs.act} conv (${cs.c}->${cs.f} channels, ${cs.h}x${cs.w}) equals the separate ops, with its gradients`, async () => {
      await tf.setBackend(backend);
      try {
        const plan = upConvPlan(cs.s, cs.k);
        const x = tf.randomNormal<tf.Rank.R4>([2, cs.h, cs.w, cs.c], 0, 1, 'float32', 1);
        const w = tf.randomNormal<tf.Rank.R4>([cs.k, cs.k, cs.c, cs.f], 0, 0.3, 'float32', 2);
        const b = tf.randomNormal<tf.Rank.R1>([cs.f], 0, 0.1, 'float32', 3);
        const dy = tf.randomNormal([2, cs.h * cs.s, cs.w * cs.s, cs.f], 0, 1, 'float32', 4);
        const fused = upConv2d(x, w, b, plan, cs.act);
        const ref = reference(x, w, b, cs.s, cs.act);
        assert.deepEqual(fused.shape, ref.shape);
        assert.ok(relErr(fused, ref) < 1e-4, `forward: ${relErr(fused, ref)}`);
        const grads = (f: (x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor1D) => tf.Tensor): tf.Tensor[] =>
          tf.grads((xx, ww, bb) => tf.sum(tf.mul(f(xx as tf.Tensor4D, ww as tf.Tensor4D, bb as tf.Tensor1D), dy)))([x, w, b]);
        const gf = grads((xx, ww, bb) => upConv2d(xx, ww, bb, plan, cs.act));
        const gr = grads((xx, ww, bb) => reference(xx, ww, bb, cs.s, cs.act));
        for (const [i, name] of ['dx', 'dw', 'db'].entries()) {
          const e = relErr(gf[i] as tf.Tensor, gr[i] as tf.Tensor);
          assert.ok(e < 1e-4, `${name}: relative error ${e}`);
        }
        tf.dispose([x, w, b, dy, fused, ref, ...gf, ...gr]);
      } finally {
        await tf.setBackend('wasm');
      }
    });
  }
}

test('the seed presets fuse their 7x7 and 5x5 decoder convolutions with the up-sampling before them: same weights, same function, same gradients', () => {
  for (const name of ['seed-mnist', 'seed-cifar'] as const) {
    const fused = buildAutoencoder(seedPreset(name), { name, seed: 5 });
    const plain = buildAutoencoder(seedPreset(name), { name, seed: 5, fuseUpsample: false });
    const names = fused.model.layers.map((l) => l.name);
    assert.ok(!names.includes('dec_up1') && !names.includes('dec_up2'), names.join(' '));
    assert.ok(plain.model.layers.some((l) => l.name === 'dec_up1'));
    assert.equal(fused.model.getLayer('dec_conv3').getClassName(), 'CvcNearestUpConv2D');
    assert.equal(fused.model.getLayer('dec_conv3').getConfig()['upsample'], 2);
    assert.deepEqual(countParams(fused.model), countParams(plain.model));
    assert.deepEqual(
      fused.model.weights.map((w) => `${w.originalName} ${w.shape.join('x')}`),
      plain.model.weights.map((w) => `${w.originalName} ${w.shape.join('x')}`),
    );
    fused.model.weights.forEach((w, i) => assert.deepEqual(w.read().dataSync(), plain.model.weights[i]?.read().dataSync(), w.originalName));
    const shape = name === 'seed-mnist' ? [3, 28, 28, 1] : [3, 32, 32, 3];
    const x = tf.randomUniform(shape, 0, 1, 'float32', 9);
    const yf = fused.model.predict(x) as tf.Tensor;
    const yp = plain.model.predict(x) as tf.Tensor;
    assert.ok(relErr(yf, yp) < 1e-4, `${name} forward ${relErr(yf, yp)}`);
    const loss = (m: tf.LayersModel) => () => tf.mean<tf.Scalar>(tf.square(tf.sub(m.apply(x, { training: true }) as tf.Tensor, x)));
    const gf = tf.variableGrads(loss(fused.model));
    const gp = tf.variableGrads(loss(plain.model));
    for (const w of plain.model.trainableWeights) {
      const fw = fused.model.trainableWeights.find((v) => v.originalName === w.originalName);
      assert.ok(fw, w.originalName);
      const e = relErr(gf.grads[(fw.read() as tf.Variable).name] as tf.Tensor, gp.grads[(w.read() as tf.Variable).name] as tf.Tensor);
      assert.ok(e < 1e-4, `${name} ${w.originalName}: gradient relative error ${e}`);
    }
    tf.dispose([x, yf, yp, gf.value, gp.value, ...Object.values(gf.grads), ...Object.values(gp.grads)]);
    fused.model.dispose();
    plain.model.dispose();
  }
});

test('an autoencoder with the folded layer survives toJSON and tf.models.modelFromJSON: same layers, initialiser and outputs', async () => {
  const net = buildAutoencoder(seedPreset('seed-mnist'), { name: 'seed-mnist', seed: 3 });
  const json = net.model.toJSON(null, false) as tf.serialization.ConfigDict;
  const again = await tf.models.modelFromJSON(json);
  try {
    const layer = again.getLayer('dec_conv3');
    assert.equal(layer.getClassName(), 'CvcNearestUpConv2D');
    const cfg = layer.getConfig();
    assert.equal(cfg['upsample'], 2);
    assert.equal(cfg['kernelSize'], 7);
    assert.deepEqual(cfg['kernelInitializer'], net.model.getLayer('dec_conv3').getConfig()['kernelInitializer']);
    // As a plain Conv2D writes it (Keras spells Glorot as VarianceScaling, fan_avg, uniform).
    const plain = buildAutoencoder(seedPreset('seed-mnist'), { name: 'seed-mnist', seed: 3, fuseUpsample: false });
    const plainInit = (plain.model.getLayer('dec_conv3').getConfig()['kernelInitializer'] as { className: string; config: object }) ?? {};
    plain.model.dispose();
    assert.deepEqual(cfg['kernelInitializer'], { className: plainInit.className, config: plainInit.config });
    again.setWeights(net.model.getWeights());
    const x = tf.randomUniform([2, 28, 28, 1], 0, 1, 'float32', 4);
    const a = net.model.predict(x) as tf.Tensor;
    const b = again.predict(x) as tf.Tensor;
    assert.ok(relErr(b, a) < 1e-6, `outputs differ: ${relErr(b, a)}`);
    tf.dispose([x, a, b]);
    assert.throws(
      () =>
        new NearestUpConv2D({
          name: 'bad',
          filters: 1,
          kernelSize: 7,
          upsample: 2,
          activation: 'relu',
          kernelInitializer: { className: 'NoSuchInit' } as never,
        }),
      /bad: unknown kernel initializer .*NoSuchInit/,
    );
  } finally {
    again.dispose();
    net.model.dispose();
  }
});

test('bilinear up-sampling, and a 3x3 convolution after nearest, keep their own up-sampling layer', () => {
  const base = {
    input: { height: 16, width: 16, channels: 1 },
    encoder: [
      { filters: 4, kernel: 3, pool: 2 },
      { filters: 4, kernel: 3, pool: 2 },
    ],
    codeSize: 3,
  };
  const bil = buildAutoencoder(modelConfigSchema.parse({ ...base, upsample: 'bilinear' }) as ResolvedModelConfig);
  assert.equal(bil.model.getLayer('dec_up1').getConfig()['interpolation'], 'bilinear');
  const near3 = buildAutoencoder(modelConfigSchema.parse(base) as ResolvedModelConfig);
  assert.equal(near3.model.getLayer('dec_up1').getConfig()['interpolation'], 'nearest');
  const near5 = buildAutoencoder(modelConfigSchema.parse({ ...base, encoder: base.encoder.map((b) => ({ ...b, kernel: 5 })) }) as ResolvedModelConfig);
  assert.ok(!near5.model.layers.some((l) => l.name.startsWith('dec_up')));
  assert.deepEqual(near5.model.outputs[0]?.shape, [null, 16, 16, 1]);
  for (const n of [bil, near3, near5]) n.model.dispose();
});
