import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ModelError } from './errors.js';
import { trainConfigSchema, type TrainConfig } from './spec.js';
import type { EpochRecord } from './history.js';

/** A named tensor value held outside tfjs (plain typed array). */
export interface NamedArray {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: 'float32' | 'int32';
  readonly values: Float32Array | Int32Array;
}

/**
 * Everything needed to continue training exactly where it stopped: the
 * model's weights (batch-norm statistics included), Adam's state, the epoch
 * count, the history and the best weights so far.
 */
export interface TrainingState {
  readonly config: TrainConfig;
  readonly epochsDone: number;
  /** Training steps the batch-norm moving statistics have seen (for debiasing). */
  readonly bnSteps: number;
  readonly history: readonly EpochRecord[];
  readonly best: { readonly epoch: number; readonly valLoss: number; readonly bnSteps: number; readonly weights: readonly NamedArray[] } | null;
  readonly weights: readonly NamedArray[];
  readonly optimizer: readonly NamedArray[];
}

/*
 * Checkpoint format, version 1 (integers little-endian):
 *   "CVCCKPT1" | u32 header length L | L bytes JSON | payload (tensor values,
 *   each 4-byte aligned) | sha256 (32 bytes) over everything before it.
 */
const MAGIC = 'CVCCKPT1';

interface TensorEntry {
  group: 'weights' | 'optimizer' | 'best';
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  offset: number;
  length: number;
}

interface Header {
  config: TrainConfig;
  epochsDone: number;
  bnSteps: number;
  history: EpochRecord[];
  best: { epoch: number; valLoss: number; bnSteps: number } | null;
  tensors: TensorEntry[];
}

const count = z
  .number()
  .int()
  .min(0)
  .max(2 ** 31);
/** What a header must be, even behind a valid checksum: a buggy or hostile writer can hash anything. */
const headerSchema = z.object({
  config: trainConfigSchema,
  epochsDone: count,
  bnSteps: count,
  history: z
    .array(
      z.object({
        epoch: count,
        loss: z.number(),
        valLoss: z.number(),
        valMse: z.number(),
        valCosine: z.number().optional(),
        seconds: z.number(),
        imagesPerSec: z.number(),
      }),
    )
    .max(1_000_000),
  best: z.object({ epoch: count, valLoss: z.number(), bnSteps: count }).nullable(),
  tensors: z
    .array(
      z.object({
        group: z.enum(['weights', 'optimizer', 'best']),
        name: z.string().min(1).max(512),
        shape: z.array(count).max(8),
        dtype: z.enum(['float32', 'int32']),
        offset: count.refine((o) => o % 4 === 0, 'offset must be 4-byte aligned'),
        length: count,
      }),
    )
    .max(100_000),
});

export function encodeCheckpoint(state: TrainingState): Uint8Array {
  const tensors: TensorEntry[] = [];
  const arrays: (Float32Array | Int32Array)[] = [];
  let offset = 0;
  const add = (group: TensorEntry['group'], list: readonly NamedArray[]): void => {
    for (const a of list) {
      tensors.push({ group, name: a.name, shape: [...a.shape], dtype: a.dtype, offset, length: a.values.length });
      arrays.push(a.values);
      offset += a.values.length * 4;
    }
  };
  add('weights', state.weights);
  add('optimizer', state.optimizer);
  if (state.best) add('best', state.best.weights);
  const header: Header = {
    config: state.config,
    epochsDone: state.epochsDone,
    bnSteps: state.bnSteps,
    history: [...state.history],
    best: state.best ? { epoch: state.best.epoch, valLoss: state.best.valLoss, bnSteps: state.best.bnSteps } : null,
    tensors,
  };
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (4 - ((12 + json.length) % 4)) % 4;
  if (pad) json = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
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

export function decodeCheckpoint(bytes: Uint8Array, name = 'checkpoint'): TrainingState {
  if (bytes.length < 12 + 32 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    throw new ModelError('CHECKPOINT_CORRUPT', `${name}: not a cvc checkpoint (bad magic or too short)`);
  }
  const body = bytes.subarray(0, bytes.length - 32);
  const digest = createHash('sha256').update(body).digest();
  if (!digest.equals(bytes.subarray(bytes.length - 32))) {
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
  const header: Header = parsed.data;
  const start = 12 + len;
  const groups: Record<string, NamedArray[]> = { weights: [], optimizer: [], best: [] };
  for (const t of header.tensors) {
    const elements = t.shape.reduce((p, d) => p * d, 1);
    if (elements !== t.length) throw new ModelError('CHECKPOINT_CORRUPT', `${name}: tensor ${t.name} has shape [${t.shape.join(', ')}] but ${t.length} values`);
    const from = start + t.offset;
    const to = from + t.length * 4;
    if (to > body.length) throw new ModelError('CHECKPOINT_CORRUPT', `${name}: tensor ${t.name} runs past the end`);
    // An explicit copy: Buffer#slice (bytes read from disk) would share memory, and tensors need 4-byte alignment.
    const copy = new Uint8Array(bytes.subarray(from, to));
    const values = t.dtype === 'int32' ? new Int32Array(copy.buffer) : new Float32Array(copy.buffer);
    groups[t.group]?.push({ name: t.name, shape: t.shape, dtype: t.dtype, values });
  }
  return {
    config: header.config,
    epochsDone: header.epochsDone,
    bnSteps: header.bnSteps,
    history: header.history,
    best: header.best ? { ...header.best, weights: groups['best'] ?? [] } : null,
    weights: groups['weights'] ?? [],
    optimizer: groups['optimizer'] ?? [],
  };
}
