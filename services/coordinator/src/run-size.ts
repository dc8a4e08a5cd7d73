import { KV_HEADER_ROOM } from '@cvc/messaging';
import { FoldState, Run, RunState, type EpochMetrics, type FoldStatus, type RunSpec } from '@cvc/proto';
import { CoordinatorError, MAX_ERROR_CHARS } from './errors.js';
import type { RunDoc } from './run-doc.js';

/** The NATS server's default max_payload, which a KV value (one run document) must fit in. */
export const DEFAULT_MAX_DOC_BYTES = 1024 * 1024;

/** The longest worker name StartAttempt takes (UTF-8 bytes); the fold keeps it. */
export const MAX_WORKER_BYTES = 256;

/** A double as long as JSON writes one. */
const LONG = -1.2345678901234567e-300;
/** The longest an epoch record can be in the run document: every field set, every number at full length. */
const WORST_EPOCH: EpochMetrics = { epoch: 100_000, loss: LONG, valLoss: LONG, valMse: LONG, valCosine: LONG, seconds: LONG, imagesPerSec: LONG };
/** The longest error or reason text a document keeps. */
const TEXT = '\u20ac'.repeat(MAX_ERROR_CHARS + 64);
/** Bytes of one epoch record in a fold's history, with its separating comma. */
export const EPOCH_RECORD_BYTES = JSON.stringify(WORST_EPOCH).length + 1;

/**
 * An upper bound of the bytes the run document of `spec` can grow to, with
 * every fold's history full (`folds` x `epochs` records), the longest error,
 * checkpoint keys, progress and evaluation results. The history is what grows:
 * everything else is a few kilobytes per fold.
 */
export function runDocBound(spec: RunSpec, folds: number, epochs: number): number {
  // Epoch numbers at their longest (the schema's limit), so that only the history depends on `epochs`.
  const E = 100_000;
  const id = 'x'.repeat(128);
  const key = `runs/${id}/fold-000/checkpoints/epoch-000000.ckpt`;
  const evalMetrics = { loss: LONG, mse: LONG, cosine: LONG, count: 2 ** 31 };
  const fold = (i: number): FoldStatus => ({
    fold: i,
    state: FoldState.FOLD_STATE_SUCCEEDED,
    attempts: 1000,
    worker: 'w'.repeat(MAX_WORKER_BYTES),
    history: [],
    bestEpoch: E,
    train: evalMetrics,
    val: evalMetrics,
    test: evalMetrics,
    // Text at 3 bytes a character (UTF-8 outside ASCII), with the "(gave up after N deliveries)" a given-up fold adds.
    error: TEXT,
    lastCheckpoint: key,
    lastCheckpointEpoch: E,
    bestCheckpoint: key,
    epochReports: E * 10,
    resumedFromEpoch: E,
    // Two checkpoint keys and a capped error, with the words around them.
    checkpointFallback: `${key} ${key} ${TEXT} ${'x'.repeat(128)}`,
    progress: { epoch: E, epochs: E, images: 2 ** 31, totalImages: 2 ** 31, imagesPerSec: LONG, loss: LONG, etaSeconds: LONG, updatedAtMs: 9e15 },
  });
  const run = Run.fromPartial({
    id,
    sweepId: id,
    spec,
    state: RunState.RUN_STATE_SUCCEEDED,
    datasetVersion: spec.datasetVersion || 'v'.repeat(64),
    createdAtMs: 9e15,
    updatedAtMs: 9e15,
    stopReason: TEXT,
    error: TEXT,
    folds: Array.from({ length: folds }, (_, i) => fold(i)),
    summary: { trainLoss: { mean: LONG, std: LONG }, valLoss: { mean: LONG, std: LONG }, testLoss: { mean: LONG, std: LONG }, bestFold: folds, encoder: key },
  });
  const doc: RunDoc = {
    run,
    tokens: Array.from({ length: folds }, () => 'f'.repeat(36)),
    reported: Array.from({ length: folds }, () => `${'f'.repeat(36)}:${E}`),
    manifest: key,
    paused: Array.from({ length: folds }, () => E),
    released: Array.from({ length: folds }, () => E),
    pausedAtMs: Array.from({ length: folds }, () => 9e15),
    finishedBy: Array.from({ length: folds }, () => 'f'.repeat(36)),
  };
  return new TextEncoder().encode(JSON.stringify(doc)).length + folds * epochs * EPOCH_RECORD_BYTES;
}

/**
 * Refuses, with INVALID_ARGUMENT, a run whose document could outgrow one NATS
 * message (`maxDocBytes`, the server's max_payload): its folds' histories keep
 * one record per epoch, and a run that only fails once its history is long
 * would have lost days of training. Says how many epochs would fit.
 */
export function checkRunFits(spec: RunSpec, folds: number, epochs: number, maxDocBytes: number): void {
  const limit = maxDocBytes - KV_HEADER_ROOM;
  const bound = runDocBound(spec, folds, epochs);
  if (bound <= limit) return;
  const fixed = runDocBound(spec, folds, 0);
  const fit = Math.max(0, Math.floor((limit - fixed) / (folds * EPOCH_RECORD_BYTES)));
  throw new CoordinatorError(
    'INVALID_ARGUMENT',
    `a run of ${folds} folds x ${epochs} epochs keeps ${folds * epochs} epoch records in its run document (up to ${bound} bytes), ` +
      `over the ${limit} bytes one NATS message can hold (the server's max_payload of ${maxDocBytes} bytes less ${KV_HEADER_ROOM} for headers): ` +
      `use at most ${fit} epochs with ${folds} folds, or raise the NATS server's max_payload`,
  );
}
