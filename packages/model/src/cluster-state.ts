import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { NamedArray } from './checkpoint.js';
import { ModelError } from './errors.js';

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

const count = z
  .number()
  .int()
  .min(0)
  .max(2 ** 31);
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
});
const headerSchema = z.object({
  meta: metaSchema,
  tensors: z
    .array(
      z.object({
        group: z.enum(GROUPS),
        name: z.string().min(1).max(512),
        shape: z.array(count).max(8),
        dtype: z.enum(['float32', 'int32']),
        offset: count.refine((o) => o % 4 === 0, 'offset must be 4-byte aligned'),
        length: count,
      }),
    )
    .max(100_000),
});
type Header = z.infer<typeof headerSchema>;
type Entry = Header['tensors'][number];

/** Serialises a fine-tune's state (the bytes `onCheckpoint` receives and `resume` takes). */
export function encodeClusterState(state: ClusterState): Uint8Array {
  const { meta } = state;
  const tensors: Entry[] = [];
  const arrays: (Float32Array | Int32Array)[] = [];
  let offset = 0;
  const add = (group: Entry['group'], a: NamedArray): void => {
    tensors.push({ group, name: a.name, shape: [...a.shape], dtype: a.dtype, offset, length: a.values.length });
    arrays.push(a.values);
    offset += a.values.length * 4;
  };
  for (const a of state.weights) add('weights', a);
  for (const a of state.optimizer) add('optimizer', a);
  add('centres', { name: 'centres', shape: [meta.k, meta.d], dtype: 'float32', values: state.centres });
  add('assignments', { name: 'assignments', shape: [meta.n], dtype: 'int32', values: state.assignments });
  add('target', { name: 'target', shape: [meta.n, meta.k], dtype: 'float32', values: state.target });
  const text = JSON.stringify({ meta, tensors } satisfies Header);
  const pad = (4 - ((12 + new TextEncoder().encode(text).length) % 4)) % 4;
  const json = new TextEncoder().encode(text + ' '.repeat(pad));
  const start = 12 + json.length;
  const out = new Uint8Array(start + offset + 32);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(8, json.length, true);
  out.set(json, 12);
  let at = start;
  for (const a of arrays) {
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at);
    at += a.byteLength;
  }
  out.set(createHash('sha256').update(out.subarray(0, at)).digest(), at);
  return out;
}

/** Reads bytes written by `encodeClusterState`; throws ModelError naming `name` when they are not intact. */
export function decodeClusterState(bytes: Uint8Array, name = 'clustering state'): ClusterState {
  if (bytes.length < 12 + 32 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    throw new ModelError('CHECKPOINT_CORRUPT', `${name}: not a cvc clustering state (bad magic or too short)`);
  }
  const body = bytes.subarray(0, bytes.length - 32);
  if (
    !createHash('sha256')
      .update(body)
      .digest()
      .equals(bytes.subarray(bytes.length - 32))
  ) {
    throw new ModelError('CHECKPOINT_CHECKSUM', `${name}: checksum mismatch (truncated or corrupted)`);
  }
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, true);
  if (12 + len > body.length) throw new ModelError('CHECKPOINT_CORRUPT', `${name}: header length ${len} runs past the end`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + len)));
  } catch (err) {
    throw new ModelError('CHECKPOINT_CORRUPT', `${name}: header is not valid JSON`, { cause: err });
  }
  const parsed = headerSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ModelError('CHECKPOINT_CORRUPT', `${name}: malformed header: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  const { meta, tensors } = parsed.data;
  const start = 12 + len;
  const groups = new Map<Entry['group'], NamedArray[]>(GROUPS.map((g) => [g, []]));
  for (const t of tensors) {
    if (t.shape.reduce((p, d) => p * d, 1) !== t.length) {
      throw new ModelError('CHECKPOINT_CORRUPT', `${name}: tensor ${t.name} has shape [${t.shape.join(', ')}] but ${t.length} values`);
    }
    const from = start + t.offset;
    const to = from + t.length * 4;
    if (to > body.length) throw new ModelError('CHECKPOINT_CORRUPT', `${name}: tensor ${t.name} runs past the end`);
    const copy = new Uint8Array(bytes.subarray(from, to));
    const values = t.dtype === 'int32' ? new Int32Array(copy.buffer) : new Float32Array(copy.buffer);
    groups.get(t.group)?.push({ name: t.name, shape: t.shape, dtype: t.dtype, values });
  }
  const one = (g: Entry['group'], dtype: 'float32' | 'int32', length: number): Float32Array | Int32Array => {
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
