export { ModelError, type ModelErrorCode } from './errors.js';
export {
  trainConfigSchema,
  resolveTrainConfig,
  runSpecSchema,
  seedSchema,
  type TrainConfig,
  type TrainConfigInput,
  type RunSpecInput,
  type RunSpecFields,
} from './spec.js';
export {
  ACTIVATIONS,
  LOSSES,
  UPSAMPLE_MODES,
  INITS,
  BATCH_NORM_PLACES,
  modelConfigSchema,
  inputShapeSchema,
  encoderBlockSchema,
  decoderBlockSchema,
  fitModelConfig,
  formatPath,
  describeConfigIssue,
  describeConfigIssues,
  MAX_CONFIG_ISSUES,
  shapeText,
  type Activation,
  type LossName,
  type Upsample,
  type Init,
  type BatchNormPlace,
  type InputShape,
  type ModelConfig,
  type ModelConfigInput,
  type ResolvedModelConfig,
} from './model-config.js';
export { MODEL_NAMES, SEED_MNIST, SEED_CIFAR, CAE_DEFAULTS, caeConfig, presetConfig, seedPreset, type ModelName, type CaeParams } from './model-presets.js';
export { buildAutoencoder, countParams, type Autoencoder } from './build.js';
export { NearestUpConv2D, upConv2d, upConvPlan, upConvSaves, type UpConvPlan } from './up-conv.js';
export { computeLoss, type LossParts } from './losses.js';
export { batchTensor } from './batches.js';
export { encodeCheckpoint, decodeCheckpoint, type TrainingState, type NamedArray } from './checkpoint.js';
export { type EpochRecord, type EvalMetrics } from './history.js';
export { FoldTrainer, type FitCallbacks, type BatchProgress } from './trainer.js';
export { runFold, type FoldData, type FoldResult } from './fold.js';
export { summarizeFolds, type CvSummary, type FoldSummary } from './summary.js';
export { loadEncoder, readEncoderModelConfig, embedImages, decRefine } from './encoder.js';
export {
  fineTuneClustering,
  softAssignmentTensor,
  klDivergenceTensor,
  type FineTuneOptions,
  type FineTuneProgress,
  type FineTuneResult,
} from './cluster-finetune.js';
export {
  encodeClusterState,
  decodeClusterState,
  FINE_TUNE_METHODS,
  type FineTuneMethod,
  type ClusterScores,
  type ClusterState,
  type ClusterStateMeta,
} from './cluster-state.js';
