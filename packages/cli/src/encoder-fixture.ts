// Test fixture: a tiny encoder in the layout `cvc encoder fetch` writes (the CLI's tests share it).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initBackend, tf } from '@cvc/tfjs-runtime';

/** A tiny encoder (flatten + dense to 3 units) over images of `shape`, as model.json and weights.bin bytes. */
export async function tinyEncoderFiles(shape: [number, number, number]): Promise<{ modelJson: Buffer; weights: Buffer }> {
  await initBackend('cpu');
  const model = tf.sequential({ layers: [tf.layers.flatten({ inputShape: shape }), tf.layers.dense({ units: 3, kernelInitializer: 'glorotUniform' })] });
  let art: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler((a) => {
      art = a;
      return Promise.resolve({ modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } });
    }),
  );
  model.dispose();
  if (!art?.weightSpecs || !art.weightData) throw new Error('no weights saved');
  return {
    modelJson: Buffer.from(JSON.stringify({ modelTopology: art.modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: art.weightSpecs }] })),
    weights: Buffer.from(tf.io.CompositeArrayBuffer.join(art.weightData)),
  };
}

/** Writes {@link tinyEncoderFiles} into `dir` (model.json and weights.bin). */
export async function writeTinyEncoder(dir: string, shape: [number, number, number]): Promise<void> {
  const { modelJson, weights } = await tinyEncoderFiles(shape);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.json'), modelJson);
  await writeFile(join(dir, 'weights.bin'), weights);
}
