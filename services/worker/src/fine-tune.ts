import { WorkerError } from './errors.js';
import type { ImageSet } from '@cvc/data';
import type { ResolvedModelConfig, TrainingState } from '@cvc/model';

/** One refresh of the target distribution, as `fineTuneClustering` reports it. */
export interface FineTuneProgress {
  readonly iteration: number;
  readonly maxIterations: number;
  readonly loss: number;
  readonly clusterLoss: number;
  readonly reconstructionLoss: number;
  readonly changed: number;
  readonly acc?: number;
  readonly nmi?: number;
  readonly ari?: number;
  readonly seconds: number;
}

/** Scores against the labels. */
export interface FineTuneScores {
  readonly acc: number;
  readonly nmi: number;
  readonly ari: number;
}

/** The options of a fine-tune (a job spec's resolved fields, plus hooks). */
export interface FineTuneOptions {
  readonly method: 'dcec' | 'idec' | 'dec';
  readonly k: number;
  readonly gamma: number;
  readonly updateInterval: number;
  readonly tol: number;
  readonly maxIterations: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly seed: number;
  readonly labels?: Uint8Array;
  /** Aborted: the fine-tune stops after its current batch. */
  readonly signal?: AbortSignal;
  /** A state from `onCheckpoint` to continue from. */
  readonly resume?: Uint8Array;
  onProgress?(p: FineTuneProgress): void;
  onCheckpoint?(state: Uint8Array, iteration: number): void | Promise<void>;
}

/** What a finished fine-tune returns. */
export interface FineTuneResult {
  /** Cluster of each image, and the soft assignment's max q. */
  readonly assignments: Int32Array;
  readonly confidence: Float32Array;
  readonly iterations: number;
  readonly stopReason: 'converged' | 'max-iterations';
  readonly initial?: FineTuneScores;
  readonly final?: FineTuneScores;
  /** The fine-tuned autoencoder, in the fold-checkpoint format. */
  readonly state: TrainingState;
}

/** `fineTuneClustering` of @cvc/model: DEC/IDEC/DCEC fine-tuning of a trained autoencoder on `images`. */
export type FineTuneFn = (
  input: { modelConfig: ResolvedModelConfig; source: TrainingState; images: ImageSet },
  opts: FineTuneOptions,
) => Promise<FineTuneResult>;

/** @cvc/model's fineTuneClustering, loaded on first use (the worker's default). */
export const defaultFineTune: FineTuneFn = async (input, opts) => {
  const model = (await import('@cvc/model')) as unknown as { fineTuneClustering?: FineTuneFn };
  if (!model.fineTuneClustering) throw new WorkerError('NO_FINE_TUNE', '@cvc/model has no fineTuneClustering: this build cannot run clustering jobs');
  return model.fineTuneClustering(input, opts);
};
