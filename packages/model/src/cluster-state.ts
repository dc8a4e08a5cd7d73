import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { ImageSet } from '@cvc/data';
import type { NamedArray } from './checkpoint.js';
import { ModelError } from './errors.js';
import { count, decodeContainer, encodeContainer, tensorListSchema } from './tensor-container.js';

/** The clustering methods `fineTuneClustering` runs. */
export const FINE_TUNE_METHODS = ['dec', 'idec', 'dcec'] as const;
export type FineTuneMethod = (typeof FINE_TUNE_METHODS)[number];

/** Clustering scores against known labels. */
export interface ClusterScores {
  readonly acc: number;
  readonly nmi: number;
  readonly ari: number;
}

/**
 * The settings a fine-tune's state belongs to, and where it stood. A resume
 * refuses a state whose settings differ from the run it continues (the batch
 * order, the loss or the set would no longer be the same).
 */
export interface ClusterStateMeta {
  readonly method: FineTuneMethod;
  readonly k: number;
  readonly gamma: number;
  readonly updateInterval: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly seed: number;
  /** Images in the set and code size. */
  readonly n: number;
  readonly d: number;
  /** Batches trained when the state was taken (always at a refresh of the target). */
  readonly iteration: number;
  /** Refreshes of the target so far, the one at `iteration` included. */
  readonly refreshes: number;
  /** Wall seconds spent before the state was taken (summed over resumes). */
  readonly seconds: number;
  /** Scores of the k-means initialisation, when the set had labels. */
  readonly initial: ClusterScores | null;
  /**
   * sha256 (hex) of the images fine-tuned (`imageSetSha256`) and of the
   * source checkpoint's weights (`weightsSha256`): a resume on other images
   * or from another source is refused. States written before cvc recorded
   * them have neither (and are resumed with a warning).
   */
  readonly imagesSha256?: string;
  readonly sourceSha256?: string;
}

/**
 * Everything a fine-tune needs to continue exactly where it stopped: taken
 * right after a refresh of the target P, before the next batch.
 */
export interface ClusterState {
  readonly meta: ClusterStateMeta;
  /** The autoencoder's weights by layer-scoped name (raw batch-norm statistics, as a fold checkpoint holds them). */
  readonly weights: readonly NamedArray[];
  /** Adam's state over the trained variables (in training order: the network's, then the centres). */
  readonly optimizer: readonly NamedArray[];
  /** Cluster centres, k x d row-major. */
  readonly centres: Float32Array;
  /** The hard assignment at the refresh (what the next refresh compares with). */
  readonly assignments: Int32Array;
  /** The target distribution P of that refresh, n x k row-major. */
  readonly target: Float32Array;
}

/*
 * Format, version 1 (integers little-endian), like a fold checkpoint's:
 *   "CVCCLUS1" | u32 header length L | L bytes JSON | payload (tensor values,
 *   4 bytes each) | sha256 (32 bytes) over everything before it.
 */
const MAGIC = 'CVCCLUS1';
const GROUPS = ['weights', 'optimizer', 'centres', 'assignments', 'target'] as const;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 in hex');
const scoresSchema = z.object({ acc: z.number(), nmi: z.number(), ari: z.number() });
const metaSchema = z.object({
  method: z.enum(FINE_TUNE_METHODS),
  k: count.min(1),
  gamma: z.number().min(0),
  updateInterval: count.min(1),
  batchSize: count.min(1),
  learningRate: z.number().positive(),
  seed: z.number().int(),
  n: count.min(1),
  d: count.min(1),
  iteration: count,
  refreshes: count,
  seconds: z.number().min(0),
  initial: scoresSchema.nullable(),
  imagesSha256: sha256Hex.optional(),
  sourceSha256: sha256Hex.optional(),
});
const headerSchema = z.object({
  meta: metaSchema,
  tensors: tensorListSchema(GROUPS),
});
type Group = (typeof GROUPS)[number];

/** Serialises a fine-tune's state (the bytes `onCheckpoint` receives and `resume` takes). */
export function encodeClusterState(state: ClusterState): Uint8Array {
  const { meta } = state;
  const entries = [
    ...state.weights.map((a) => ['weights', a] as const),
    ...state.optimizer.map((a) => ['optimizer', a] as const),
    ['centres', { name: 'centres', shape: [meta.k, meta.d], dtype: 'float32', values: state.centres }] as const,
    ['assignments', { name: 'assignments', shape: [meta.n], dtype: 'int32', values: state.assignments }] as const,
    ['target', { name: 'target', shape: [meta.n, meta.k], dtype: 'float32', values: state.target }] as const,
  ];
  return encodeContainer(MAGIC, { meta }, entries);
}

/** Reads bytes written by `encodeClusterState`; throws ModelError naming `name` when they are not intact. */
export function decodeClusterState(bytes: Uint8Array, name = 'clustering state'): ClusterState {
  const { header, groups } = decodeContainer(bytes, MAGIC, headerSchema, name, 'cvc clustering state');
  const { meta } = header;
  const one = (g: Group, dtype: 'float32' | 'int32', length: number): Float32Array | Int32Array => {
    const list = groups.get(g) ?? [];
    const a = list[0];
    if (list.length !== 1 || !a || a.dtype !== dtype || a.values.length !== length) {
      throw new ModelError('CHECKPOINT_CORRUPT', `${name}: needs one ${dtype} '${g}' tensor of ${length} values`);
    }
    return a.values;
  };
  return {
    meta,
    weights: groups.get('weights') ?? [],
    optimizer: groups.get('optimizer') ?? [],
    centres: one('centres', 'float32', meta.k * meta.d) as Float32Array,
    assignments: one('assignments', 'int32', meta.n) as Int32Array,
    target: one('target', 'float32', meta.n * meta.k) as Float32Array,
  };
}

/** sha256 (hex) of an image set's shape and pixels: what a fine-tune state records of the images it belongs to. */
export function imageSetSha256(set: ImageSet): string {
  const h = createHash('sha256');
  h.update(`${set.count}x${set.height}x${set.width}x${set.channels}\n`);
  h.update(set.images.subarray(0, set.count * set.height * set.width * set.channels));
  return h.digest('hex');
}

/** sha256 (hex) of named weights (names, shapes, dtypes and values, in order), with the batch-norm step count that debiases them. */
export function weightsSha256(weights: readonly NamedArray[], bnSteps: number): string {
  const h = createHash('sha256');
  h.update(`bnSteps ${bnSteps}\n`);
  for (const w of weights) {
    h.update(`${w.name} ${w.dtype} [${w.shape.join(',')}]\n`);
    h.update(new Uint8Array(w.values.buffer, w.values.byteOffset, w.values.byteLength));
  }
  return h.digest('hex');
}
