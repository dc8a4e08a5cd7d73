import { FoldState, Run, RunSpec, RunState } from '@cvc/proto';
import { describeIssue } from '@cvc/core';
import {
  describeConfigIssues,
  fitModelConfig,
  presetConfig,
  runSpecSchema,
  shapeText,
  type InputShape,
  type ModelConfigInput,
  type RunSpecFields,
} from '@cvc/model';
import { StorageError, validateSegment } from '@cvc/storage';
import { CoordinatorError } from './errors.js';

/** A run spec with every default filled in and checked (what the coordinator stores and workers receive). */
export type ResolvedSpec = Omit<RunSpec, keyof RunSpecFields> & RunSpecFields;

/** What the coordinator keeps per run in the KV bucket: the public Run plus each fold's attempt token. */
export interface RunDoc {
  readonly run: Run;
  /** Token of each fold's current attempt ('' when none). */
  readonly tokens: string[];
  /** Per fold, `TOKEN:EPOCH` of the last epoch report applied, so a retried report is not counted twice. */
  readonly reported?: string[];
  /** Object key of the dataset manifest, fixed at submission, so starting an attempt needs no object-storage call. */
  readonly manifest?: string;
  /**
   * Per fold, the rung epoch at which it waits for its sweep to judge the run
   * (0 or absent: not paused). A paused fold's task was acknowledged; it is
   * queued again once the run goes on past the rung.
   */
  readonly paused?: number[];
  /**
   * Per fold, the rung whose pause `resumePaused` cleared and whose resume task
   * it owes (0 or absent: none). Set in the update that clears the pause,
   * cleared when an attempt takes the fold, so a resume cut short before it
   * queued the fold queues it on the next call, and a fold waiting for its own
   * task (a failed attempt's redelivery) is never queued a second time.
   */
  readonly released?: number[];
  /**
   * Per fold, when (the coordinator's clock, ms) it was last paused at a rung
   * (0 or absent: never). `resumePaused` waits for the pausing attempt's
   * checkpoint of the rung until this is `checkpointGraceMs` old.
   */
  readonly pausedAtMs?: number[];
  /**
   * Per fold, the token of the attempt whose FinishFold was recorded ('' or
   * absent: none), so that attempt's retried FinishFold (its first answer was
   * lost) is answered OK instead of refused as stale.
   */
  readonly finishedBy?: string[];
}

export const runKey = (id: string): string => `run.${id}`;

export const FINAL_RUN_STATES: readonly RunState[] = [
  RunState.RUN_STATE_SUCCEEDED,
  RunState.RUN_STATE_FAILED,
  RunState.RUN_STATE_CANCELLED,
  RunState.RUN_STATE_STOPPED,
];
/** States in which the run takes no more attempts or reports (final, or finishing). */
export const ENDING_RUN_STATES: readonly RunState[] = [...FINAL_RUN_STATES, RunState.RUN_STATE_FINALIZING, RunState.RUN_STATE_CANCELLING];
export const FINAL_FOLD_STATES: readonly FoldState[] = [
  FoldState.FOLD_STATE_SUCCEEDED,
  FoldState.FOLD_STATE_FAILED,
  FoldState.FOLD_STATE_CANCELLED,
  FoldState.FOLD_STATE_STOPPED,
];

/** Restores proto defaults after a JSON round trip. */
export function decodeDoc(doc: RunDoc): RunDoc {
  return {
    run: Run.fromPartial(doc.run),
    tokens: [...doc.tokens],
    ...(doc.reported ? { reported: [...doc.reported] } : {}),
    ...(typeof doc.manifest === 'string' ? { manifest: doc.manifest } : {}),
    ...(doc.paused ? { paused: [...doc.paused] } : {}),
    ...(doc.released ? { released: [...doc.released] } : {}),
    ...(doc.pausedAtMs ? { pausedAtMs: [...doc.pausedAtMs] } : {}),
    ...(doc.finishedBy ? { finishedBy: [...doc.finishedBy] } : {}),
  };
}

/** The proto field each run-spec schema key is, for error messages (`spec.learning_rate: ...`). */
const PROTO_FIELDS: Readonly<Record<keyof RunSpecFields, string>> = {
  model: 'model',
  modelConfig: 'model_config',
  folds: 'folds',
  epochs: 'epochs',
  batchSize: 'batch_size',
  learningRate: 'learning_rate',
  seed: 'seed',
  upsample: 'upsample',
};

const shown = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : String(v));

/**
 * Fills defaults and checks every field of a run spec with the trainer's own
 * schema (`runSpecSchema`): an unset numeric field takes the default, a set one
 * is validated as given (0, NaN, +-Infinity and negatives are refused where
 * the schema refuses them, a seed of 0 is kept). Throws INVALID_ARGUMENT
 * naming the proto field. The result has every field set, so a worker's
 * `FoldTrainer.create` sees the same values the coordinator checked.
 * `model_config_json` is parsed and checked field by field
 * (`spec.model_config.encoder[2].filters: must be >= 1`); its fit to the
 * dataset is `fitSpecToDataset`'s, once the dataset is known.
 */
export function resolveSpec(spec: RunSpec | undefined): ResolvedSpec {
  if (!spec) throw new CoordinatorError('INVALID_ARGUMENT', 'spec is required');
  const bad = (field: string, msg: string): never => {
    throw new CoordinatorError('INVALID_ARGUMENT', `spec.${field}: ${msg}`);
  };
  const segment = (field: string, value: string, what: string): void => {
    try {
      validateSegment(value, what);
    } catch (err) {
      if (!(err instanceof StorageError)) throw err;
      bad(field, err.message);
    }
  };
  segment('dataset', spec.dataset, 'dataset');
  if (spec.name) segment('name', spec.name, 'name');
  if (spec.datasetVersion) segment('dataset_version', spec.datasetVersion, 'dataset version');
  let modelConfig: unknown;
  if (spec.modelConfigJson) {
    try {
      modelConfig = JSON.parse(spec.modelConfigJson);
    } catch (err) {
      bad('model_config_json', `not JSON (${(err as Error).message})`);
    }
    // The spec's up-sampling applies to a config that sets none; one that sets another conflicts.
    if (spec.upsample !== '' && typeof modelConfig === 'object' && modelConfig !== null && !Array.isArray(modelConfig)) {
      const own = (modelConfig as Record<string, unknown>)['upsample'];
      if (own !== undefined && own !== spec.upsample) bad('upsample', `'${spec.upsample}' conflicts with model_config.upsample ${shown(own)}`);
      modelConfig = { ...modelConfig, upsample: spec.upsample };
    }
  }
  const input = {
    model: spec.model === '' && modelConfig !== undefined ? 'custom' : spec.model,
    modelConfig,
    folds: spec.folds,
    epochs: spec.epochs,
    batchSize: spec.batchSize,
    learningRate: spec.learningRate,
    seed: spec.seed,
    // A proto3 string is '' when unset.
    upsample: spec.upsample === '' ? undefined : spec.upsample,
  };
  const parsed = runSpecSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = issue?.path[0] as keyof RunSpecFields | undefined;
    const field = key !== undefined ? (PROTO_FIELDS[key] ?? String(key)) : 'spec';
    const rule = issue ? describeIssue(issue) : 'invalid value';
    if (key === 'modelConfig' && issue) {
      // Every problem of the config at once (each naming its field), not only the first.
      const own = parsed.error.issues.filter((i) => i.path[0] === 'modelConfig').map((i) => ({ ...i, path: i.path.slice(1) }));
      throw new CoordinatorError('INVALID_ARGUMENT', describeConfigIssues(own, 'spec.model_config'));
    }
    return bad(field, `${rule}, got ${shown(key !== undefined ? input[key] : undefined)}`);
  }
  if (parsed.data.model === 'custom' && parsed.data.modelConfig === undefined) bad('model_config_json', 'required for model custom (the config as JSON)');
  if (parsed.data.modelConfig !== undefined && (parsed.data.model === 'seed-mnist' || parsed.data.model === 'seed-cifar')) {
    bad('model', `${parsed.data.model} is a fixed preset; a spec with model_config_json names model custom or cae`);
  }
  return { ...spec, ...parsed.data, upsample: parsed.data.modelConfig?.upsample ?? parsed.data.upsample ?? 'nearest' };
}

/**
 * The spec's network fitted to its dataset's images: the given config (or the
 * preset the model names, with the spec's up-sampling) with the dataset's
 * input shape, its geometry checked. Returns the spec with `modelConfigJson`
 * the fully resolved config and `upsample` the config's; throws
 * INVALID_ARGUMENT naming the field (`spec.model_config.encoder[2].pool: ...`).
 */
export function fitSpecToDataset(spec: ResolvedSpec, dataset: string, shape: InputShape): ResolvedSpec {
  const given: ModelConfigInput | undefined = spec.modelConfig ?? presetConfig(spec.model, { upsample: spec.upsample });
  if (!given) throw new CoordinatorError('INVALID_ARGUMENT', `spec.model_config_json: required for model ${spec.model}`);
  const fit = fitModelConfig(given, shape);
  if (!fit.ok) {
    if (fit.field === 'input' && !spec.modelConfig && given.input) {
      throw new CoordinatorError(
        'INVALID_ARGUMENT',
        `spec.model: ${spec.model} takes ${shapeText(given.input)} images; dataset ${dataset} has ${shapeText(shape)}`,
      );
    }
    const field = fit.field ? `model_config.${fit.field}` : 'model_config';
    throw new CoordinatorError('INVALID_ARGUMENT', `spec.${field}: ${fit.message}${fit.field === 'input' ? ` (dataset ${dataset})` : ''}`);
  }
  return { ...spec, modelConfig: fit.config, modelConfigJson: JSON.stringify(fit.config), upsample: fit.config.upsample };
}

/** The spec as it goes on the wire and into the run doc: the proto fields only (the config travels as `modelConfigJson`). */
export function wireSpec(spec: ResolvedSpec): RunSpec {
  const { modelConfig, ...rest } = spec;
  void modelConfig;
  return RunSpec.fromPartial(rest);
}
