export { ModelError, type ModelErrorCode } from './errors.js';
export {
  MODEL_NAMES,
  MODEL_SHAPES,
  trainConfigSchema,
  resolveTrainConfig,
  runSpecSchema,
  seedSchema,
  type ModelName,
  type LossName,
  type Upsample,
  type TrainConfig,
  type TrainConfigInput,
  type RunSpecInput,
  type RunSpecFields,
  type ModelShape,
} from './spec.js';
export { buildAutoencoder, countParams, type Autoencoder } from './build.js';
export { computeLoss, type LossParts } from './losses.js';
export { batchTensor } from './batches.js';
export { encodeCheckpoint, decodeCheckpoint, type TrainingState, type NamedArray } from './checkpoint.js';
export { type EpochRecord, type EvalMetrics } from './history.js';
export { FoldTrainer, type FitCallbacks, type BatchProgress } from './trainer.js';
export { runFold, type FoldData, type FoldResult } from './fold.js';
export { summarizeFolds, type CvSummary, type FoldSummary } from './summary.js';
export { loadEncoder, embedImages, decRefine } from './encoder.js';
