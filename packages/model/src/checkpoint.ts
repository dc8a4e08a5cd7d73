import { z } from 'zod';
import { count, decodeContainer, encodeContainer, tensorListSchema } from './tensor-container.js';
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

/* Checkpoint format, version 1: a tensor container (tensor-container.ts) with magic "CVCCKPT1". */
const MAGIC = 'CVCCKPT1';

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
  tensors: tensorListSchema(['weights', 'optimizer', 'best']),
});

export function encodeCheckpoint(state: TrainingState): Uint8Array {
  const entries = [
    ...state.weights.map((a) => ['weights', a] as const),
    ...state.optimizer.map((a) => ['optimizer', a] as const),
    ...(state.best ? state.best.weights.map((a) => ['best', a] as const) : []),
  ];
  const header = {
    config: state.config,
    epochsDone: state.epochsDone,
    bnSteps: state.bnSteps,
    history: [...state.history],
    best: state.best ? { epoch: state.best.epoch, valLoss: state.best.valLoss, bnSteps: state.best.bnSteps } : null,
  };
  return encodeContainer(MAGIC, header, entries);
}

export function decodeCheckpoint(bytes: Uint8Array, name = 'checkpoint'): TrainingState {
  const { header, groups: byGroup } = decodeContainer(bytes, MAGIC, headerSchema, name, 'cvc checkpoint');
  const groups = Object.fromEntries(byGroup);
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
