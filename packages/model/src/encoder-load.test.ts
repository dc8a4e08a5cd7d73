// A user's own TensorFlow.js layers model as the encoder: tensorflowjs_converter's file layout, the
// errors for what cannot be loaded, and an encoder whose output is a feature map.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomImageSet } from '@cvc/data/testing';
import { initBackend, tf } from '@cvc/tfjs-runtime';
import { embedImages, loadEncoder, ModelError } from './index.js';

await initBackend('cpu');

/** A tiny encoder whose output is a 4x4x2 feature map (no flatten, no dense code). */
function mapEncoder(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 1] });
  const out = tf.layers
    .conv2d({ filters: 2, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) })
    .apply(input);
  return tf.model({ inputs: input, outputs: out as tf.SymbolicTensor });
}

/** Saves `model` as tensorflowjs_converter does: model.json and the weights split over `shards` files named groupN-shardIofN.bin. */
async function saveConverted(model: tf.LayersModel, dir: string, shards: number): Promise<void> {
  let art: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler((a) => {
      art = a;
      return Promise.resolve({ modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } });
    }),
  );
  const bytes = new Uint8Array(tf.io.CompositeArrayBuffer.join(art?.weightData));
  const paths = Array.from({ length: shards }, (_, i) => `group1-shard${i + 1}of${shards}.bin`);
  const per = Math.ceil(bytes.length / shards);
  for (const [i, p] of paths.entries()) await writeFile(join(dir, p), bytes.subarray(i * per, (i + 1) * per));
  await writeFile(
    join(dir, 'model.json'),
    JSON.stringify({ format: 'layers-model', modelTopology: art?.modelTopology, weightsManifest: [{ paths, weights: art?.weightSpecs }] }),
  );
}

const unreadable = (text: RegExp) => (e: unknown) => e instanceof ModelError && e.code === 'ENCODER_UNREADABLE' && text.test(e.message);

test("loadEncoder reads tensorflowjs_converter's sharded weight files, and names what it cannot load", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-own-enc-'));
  const model = mapEncoder();
  try {
    await saveConverted(model, dir, 2);
    const loaded = await loadEncoder(dir);
    const x = tf.randomUniform([2, 8, 8, 1], 0, 1, 'float32', 3);
    const [a, b] = [model.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor];
    assert.deepEqual(Array.from(b.dataSync()), Array.from(a.dataSync()));
    tf.dispose([x, a, b]);
    loaded.dispose();

    // A shard cut short, a weight file outside the folder, a graph model.
    await writeFile(join(dir, 'group1-shard2of2.bin'), new Uint8Array(3));
    await assert.rejects(loadEncoder(dir), unreadable(/model\.json: its 2 weights need 80 bytes, group1-shard1of2\.bin \+ group1-shard2of2\.bin hold 43/));
    const json = { format: 'layers-model', modelTopology: {}, weightsManifest: [{ paths: ['../escape.bin'], weights: [] }] };
    await writeFile(join(dir, 'model.json'), JSON.stringify(json));
    await assert.rejects(loadEncoder(dir), unreadable(/weightsManifest\[0\]\.paths holds "\.\.\/escape\.bin"/));
    await writeFile(join(dir, 'model.json'), JSON.stringify({ format: 'graph-model', modelTopology: { node: [] }, weightsManifest: [] }));
    await assert.rejects(
      loadEncoder(dir),
      unreadable(/not a TensorFlow\.js layers model \(format 'graph-model'\); convert a Keras model with tensorflowjs_converter/),
    );
  } finally {
    model.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

test('embedImages flattens an encoder whose output is a feature map, and refuses a batch size of 0', () => {
  const model = mapEncoder();
  const set = randomImageSet(5, 8, 8, 1, 2);
  const codes = embedImages(model, set, 2);
  assert.equal(codes.n, 5);
  assert.equal(codes.d, 4 * 4 * 2);
  const x = tf.tensor4d(
    Float32Array.from(set.images, (v) => v / 255),
    [5, 8, 8, 1],
  );
  const want = model.predict(x) as tf.Tensor;
  assert.deepEqual(Array.from(codes.data), Array.from(want.dataSync()));
  tf.dispose([x, want]);
  assert.throws(() => embedImages(model, set, 0), /batchSize must be an integer >= 1, got 0/);
  model.dispose();
});

test('embedImages refuses an infinite code with CODES_NOT_FINITE naming the image, its file and the code dimension', () => {
  const model = mapEncoder();
  // Huge kernels: an image of zeros still codes to 0, any bright pixel overflows float32.
  const [kernel, bias] = model.getWeights();
  const huge = [tf.fill(kernel?.shape ?? [], 1e38), tf.zerosLike(bias as tf.Tensor)];
  model.setWeights(huge);
  tf.dispose(huge);
  const set = randomImageSet(4, 8, 8, 1, 2);
  const images = Uint8Array.from(set.images);
  images.fill(0, 0, 2 * 64);
  images.fill(255, 2 * 64, 3 * 64);
  const files = ['a.png', 'b.png', 'c.png', 'd.png'];
  assert.throws(
    () => embedImages(model, { ...set, images }, 2, (i) => files[i] as string),
    (e: unknown) => e instanceof ModelError && e.code === 'CODES_NOT_FINITE' && /gave Infinity for image 2 \(c\.png\), code dimension 0 of 32/.test(e.message),
  );
  assert.throws(() => embedImages(model, { ...set, images }, 3), /gave Infinity for image 2, code dimension 0 of 32/);
  model.dispose();
});
