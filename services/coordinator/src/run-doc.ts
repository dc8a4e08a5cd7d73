import { FoldState, Run, RunState, type RunSpec } from '@cvc/proto';

/** A run spec with every default filled in (what the coordinator stores and workers receive). */
export type ResolvedSpec = RunSpec & { folds: number; epochs: number; batchSize: number; learningRate: number; seed: number };
import { MODEL_NAMES } from '@cvc/model';
import { validateSegment } from '@cvc/storage';
import { CoordinatorError } from './errors.js';

/** What the coordinator keeps per run in the KV bucket: the public Run plus each fold's attempt token. */
export interface RunDoc {
  readonly run: Run;
  /** Token of each fold's current attempt ('' when none). */
  readonly tokens: string[];
  /** Per fold, `TOKEN:EPOCH` of the last epoch report applied, so a retried report is not counted twice. */
  readonly reported?: string[];
  /** Object key of the dataset manifest, fixed at submission, so starting an attempt needs no object-storage call. */
  readonly manifest?: string;
}

export const runKey = (id: string): string => `run.${id}`;

export const FINAL_RUN_STATES: readonly RunState[] = [RunState.RUN_STATE_SUCCEEDED, RunState.RUN_STATE_FAILED, RunState.RUN_STATE_CANCELLED];
/** States in which the run takes no more attempts or reports (final, or finishing). */
export const ENDING_RUN_STATES: readonly RunState[] = [...FINAL_RUN_STATES, RunState.RUN_STATE_FINALIZING, RunState.RUN_STATE_CANCELLING];
export const FINAL_FOLD_STATES: readonly FoldState[] = [FoldState.FOLD_STATE_SUCCEEDED, FoldState.FOLD_STATE_FAILED, FoldState.FOLD_STATE_CANCELLED];

/** Restores proto defaults after a JSON round trip. */
export function decodeDoc(doc: RunDoc): RunDoc {
  return {
    run: Run.fromPartial(doc.run),
    tokens: [...doc.tokens],
    ...(doc.reported ? { reported: [...doc.reported] } : {}),
    ...(typeof doc.manifest === 'string' ? { manifest: doc.manifest } : {}),
  };
}

/** Fills defaults and checks every field of a run spec; the error names the field. */
export function resolveSpec(spec: RunSpec | undefined): ResolvedSpec {
  if (!spec) throw new CoordinatorError('INVALID_ARGUMENT', 'spec is required');
  const bad = (field: string, msg: string): never => {
    throw new CoordinatorError('INVALID_ARGUMENT', `spec.${field}: ${msg}`);
  };
  if (!(MODEL_NAMES as readonly string[]).includes(spec.model)) bad('model', `unknown model '${spec.model}' (known: ${MODEL_NAMES.join(', ')})`);
  try {
    validateSegment(spec.dataset, 'dataset');
    if (spec.name) validateSegment(spec.name, 'name');
    if (spec.datasetVersion) validateSegment(spec.datasetVersion, 'dataset version');
  } catch (err) {
    bad(spec.dataset === '' ? 'dataset' : 'name', (err as Error).message);
  }
  const folds = spec.folds || 5;
  if (folds < 2 || folds > 100) bad('folds', `must be 2..100, got ${folds}`);
  const epochs = spec.epochs || 100;
  if (epochs > 100_000) bad('epochs', `must be 1..100000, got ${epochs}`);
  const batchSize = spec.batchSize || 32;
  if (batchSize > 65_536) bad('batch_size', `must be 1..65536, got ${batchSize}`);
  const learningRate = spec.learningRate || 1e-4;
  if (!(learningRate > 0 && learningRate <= 1)) bad('learning_rate', `must be in (0, 1], got ${learningRate}`);
  const upsample = spec.upsample || 'nearest';
  if (upsample !== 'nearest' && upsample !== 'bilinear') bad('upsample', `must be nearest or bilinear, got '${upsample}'`);
  return { ...spec, folds, epochs, batchSize, learningRate, upsample, seed: spec.seed ?? 42 };
}
