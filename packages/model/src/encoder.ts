import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ImageSet } from '@cvc/data';
import { tf } from '@cvc/tfjs-runtime';
import { batchTensor } from './batches.js';
import { ModelError } from './errors.js';
import { modelConfigSchema, describeConfigIssue, type ResolvedModelConfig } from './model-config.js';
import { MODEL_NAMES, presetConfig, type ModelName } from './model-presets.js';

/** Bytes per value of a weight's dtype in a weights file (no quantization). */
const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1 };

/**
 * Loads an encoder: a TensorFlow.js layers model in `dir`, model.json and the
 * weight files its `weightsManifest` names (`cvc encoder fetch` writes one
 * `weights.bin`; tensorflowjs_converter writes `group1-shard1of2.bin`, ...).
 * Throws ModelError ENCODER_UNREADABLE naming the file and the problem: a
 * graph model, a missing or short weights file, a topology tfjs cannot build.
 */
export async function loadEncoder(dir: string): Promise<tf.LayersModel> {
  const hint = `fetch one with 'cvc encoder fetch RUN --out ${dir}'`;
  const file = join(dir, 'model.json');
  let json: { format?: unknown; modelTopology?: unknown; weightsManifest?: unknown };
  try {
    json = JSON.parse(await readFile(file, 'utf8')) as typeof json;
  } catch (err) {
    throw new ModelError('ENCODER_UNREADABLE', `${dir}: cannot read model.json (${(err as Error).message}); ${hint}`, { cause: err });
  }
  const unreadable = (why: string, cause?: unknown): ModelError =>
    new ModelError('ENCODER_UNREADABLE', `${file}: ${why}`, cause === undefined ? undefined : { cause });
  if (json === null || typeof json !== 'object' || typeof json.modelTopology !== 'object' || json.modelTopology === null || json.format === 'graph-model') {
    throw unreadable(
      `not a TensorFlow.js layers model${typeof json?.format === 'string' ? ` (format '${json.format}')` : ''}; convert a Keras model with tensorflowjs_converter --input_format keras --output_format tfjs_layers_model, or ${hint}`,
    );
  }
  const groups = json.weightsManifest;
  if (!Array.isArray(groups)) throw unreadable('has no weightsManifest list');
  const paths: string[] = [];
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  for (const [i, g] of (groups as { paths?: unknown; weights?: unknown }[]).entries()) {
    if (!Array.isArray(g?.paths) || !Array.isArray(g.weights)) throw unreadable(`weightsManifest[${i}] needs 'paths' and 'weights' lists`);
    for (const p of g.paths as unknown[]) {
      // Only files beside model.json: a manifest must not read elsewhere.
      if (typeof p !== 'string' || p === '' || p !== basename(p) || p === '..' || p === '.')
        throw unreadable(`weightsManifest[${i}].paths holds ${JSON.stringify(p)}; weight files must be plain names beside model.json`);
      paths.push(p);
    }
    weightSpecs.push(...(g.weights as tf.io.WeightsManifestEntry[]));
  }
  const parts: Buffer[] = [];
  for (const p of paths) {
    try {
      parts.push(await readFile(join(dir, p)));
    } catch (err) {
      throw new ModelError('ENCODER_UNREADABLE', `${join(dir, p)}: cannot read it (${(err as Error).message}); model.json names it; ${hint}`, { cause: err });
    }
  }
  const weights = Buffer.concat(parts);
  // Quantized weights are smaller than their dtype; only plain ones have a size to check.
  if (weightSpecs.every((w) => w.quantization === undefined && DTYPE_BYTES[w.dtype] !== undefined)) {
    const want = weightSpecs.reduce((sum, w) => sum + w.shape.reduce((a, b) => a * b, 1) * (DTYPE_BYTES[w.dtype] as number), 0);
    if (want !== weights.length)
      throw unreadable(
        `its ${weightSpecs.length} weights need ${want} bytes, ${paths.join(' + ') || 'the weight files'} ${paths.length === 1 ? 'holds' : 'hold'} ${weights.length} (truncated, or from another model?)`,
      );
  }
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength);
  try {
    return await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }));
  } catch (err) {
    throw unreadable(`TensorFlow.js cannot build the model (${(err as Error).message})`, err);
  }
}

/**
 * The model name and config an encoder's model.json records
 * (`userDefinedMetadata.cvc`, written by `FoldTrainer.exportEncoder`). An
 * encoder exported before configs existed has none: its preset is inferred
 * from its input shape (28x28x1 seed-mnist, 32x32x3 seed-cifar), else null.
 */
export async function readEncoderModelConfig(dir: string): Promise<{ model: ModelName; modelConfig: ResolvedModelConfig } | null> {
  let json: { modelTopology?: unknown; userDefinedMetadata?: { cvc?: { model?: unknown; modelConfig?: unknown } } };
  try {
    json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as typeof json;
  } catch (err) {
    throw new ModelError('ENCODER_UNREADABLE', `${dir}/model.json: cannot read it (${(err as Error).message})`, { cause: err });
  }
  const meta = json.userDefinedMetadata?.cvc;
  if (meta?.modelConfig !== undefined) {
    const parsed = modelConfigSchema.safeParse(meta.modelConfig);
    if (!parsed.success || !parsed.data.input) {
      const why = parsed.success ? 'modelConfig.input: required' : describeConfigIssue(parsed.error, 'modelConfig');
      throw new ModelError('ENCODER_UNREADABLE', `${dir}/model.json: userDefinedMetadata.cvc.${why}`);
    }
    const model = MODEL_NAMES.find((m) => m === meta.model) ?? 'custom';
    return { model, modelConfig: parsed.data as ResolvedModelConfig };
  }
  const layers = (json.modelTopology as { config?: { layers?: { config?: { batch_input_shape?: unknown } }[] } } | undefined)?.config?.layers;
  const shape = layers?.[0]?.config?.batch_input_shape;
  const key = Array.isArray(shape) ? shape.slice(1).join('x') : '';
  const model: ModelName | undefined = key === '28x28x1' ? 'seed-mnist' : key === '32x32x3' ? 'seed-cifar' : undefined;
  if (!model) return null;
  return { model, modelConfig: modelConfigSchema.parse(presetConfig(model)) as ResolvedModelConfig };
}

/**
 * The codes of every image of `set`, `batchSize` at a time: n x codeSize,
 * row-major (a feature-map output flattened per image). A NaN or infinite
 * code value (a diverged or broken encoder, or one whose weights overflow on
 * these images) is ModelError CODES_NOT_FINITE naming the image (by index, or
 * by `describeImage(index)` when given, e.g. its file) and the code dimension,
 * never codes written or clustered silently.
 */
export function embedImages(
  encoder: tf.LayersModel,
  set: ImageSet,
  batchSize = 256,
  describeImage?: (index: number) => string,
): { data: Float32Array; n: number; d: number } {
  const shape = encoder.inputs[0]?.shape ?? [];
  if (shape[1] !== set.height || shape[2] !== set.width || shape[3] !== set.channels) {
    throw new ModelError('SHAPE_MISMATCH', `the encoder takes ${shape.slice(1).join('x')} images, the dataset has ${set.height}x${set.width}x${set.channels}`);
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be an integer >= 1, got ${batchSize}`);
  if (encoder.outputs.length !== 1) throw new ModelError('SHAPE_MISMATCH', `the encoder has ${encoder.outputs.length} outputs; it must have one, the code`);
  // A feature map (batch x h x w x c) is flattened: each image's code is all of its values.
  const dims = encoder.outputs[0]?.shape.slice(1) ?? [];
  if (dims.length === 0 || dims.some((v) => v === null || !(v > 0)))
    throw new ModelError('SHAPE_MISMATCH', `the encoder's output has shape [${encoder.outputs[0]?.shape.join(', ')}]; each image needs a code of a fixed size`);
  const d = (dims as number[]).reduce((a, b) => a * b, 1);
  const out = new Float32Array(set.count * d);
  for (let start = 0; start < set.count; start += batchSize) {
    const size = Math.min(batchSize, set.count - start);
    // One predict batch per call: predict's default (32) would split it again (1.7x slower for seed-cifar).
    const codes = tf.tidy(() => encoder.predict(batchTensor(set, undefined, start, size), { batchSize: size }) as tf.Tensor);
    const values = codes.dataSync();
    codes.dispose();
    for (let j = 0; j < values.length; j++) {
      const v = values[j] as number;
      if (Number.isFinite(v)) continue;
      const image = start + Math.floor(j / d);
      const what = describeImage ? `image ${image} (${describeImage(image)})` : `image ${image}`;
      throw new ModelError(
        'CODES_NOT_FINITE',
        `the encoder gave ${v} for ${what}, code dimension ${j % d} of ${d}: its weights hold NaN or infinite values, or overflow on these images; retrain it or check the model`,
      );
    }
    out.set(values, start * d);
  }
  return { data: out, n: set.count, d };
}

/**
 * DEC refinement of cluster centers on fixed codes (Xie et al., 2016): a
 * Student-t soft assignment q_ij ∝ (1 + |z_i − μ_j|²)^-1, trained to match the
 * sharpened target p_ij ∝ q_ij² / Σ_i q_ij by minimising KL(P‖Q), the target
 * refreshed every epoch. Starts from k-means centers; returns hard labels and
 * each code's confidence (its largest q_ij).
 */
export function decRefine(
  codes: { data: Float32Array; n: number; d: number },
  centers: Float64Array,
  k: number,
  opts: { epochs?: number; learningRate?: number; tol?: number } = {},
): { labels: Int32Array; changed: number; confidence: Float32Array } {
  const z = tf.tensor2d(codes.data, [codes.n, codes.d]);
  const mu = tf.variable(tf.tensor2d(Float32Array.from(centers), [k, codes.d]));
  const opt = tf.train.adam(opts.learningRate ?? 0.01);
  const soft = (): tf.Tensor2D =>
    tf.tidy(() => {
      const d2 = tf.sum(tf.square(tf.sub(tf.expandDims(z, 1), tf.expandDims(mu, 0))), 2);
      const q = tf.reciprocal(tf.add(1, d2));
      return tf.div<tf.Tensor2D>(q, tf.sum(q, 1, true));
    });
  const hard = (): Int32Array => {
    const q = soft();
    const l = tf.argMax(q, 1);
    const out = l.dataSync() as Int32Array;
    q.dispose();
    l.dispose();
    return Int32Array.from(out);
  };
  const start = hard();
  let labels = start;
  for (let epoch = 0; epoch < (opts.epochs ?? 50); epoch++) {
    const p = tf.tidy(() => {
      const q = soft();
      const w = tf.div(tf.square(q), tf.sum(q, 0));
      return tf.div(w, tf.sum(w, 1, true));
    });
    for (let step = 0; step < 10; step++) {
      opt.minimize(() => tf.tidy(() => tf.div<tf.Scalar>(tf.sum(tf.mul(p, tf.log(tf.div(tf.add(p, 1e-12), tf.add(soft(), 1e-12))))), codes.n)), false, [mu]);
    }
    p.dispose();
    const next = hard();
    let moved = 0;
    for (let i = 0; i < next.length; i++) if (next[i] !== labels[i]) moved++;
    labels = next;
    if (moved / codes.n < (opts.tol ?? 0.001)) break;
  }
  let changed = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] !== start[i]) changed++;
  const q = soft();
  const top = tf.max(q, 1);
  const confidence = Float32Array.from(top.dataSync());
  q.dispose();
  top.dispose();
  z.dispose();
  mu.dispose();
  opt.dispose();
  return { labels, changed, confidence };
}
