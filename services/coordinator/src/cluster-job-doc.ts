import { ClusterJob, ClusterJobState, type ClusterJobSpec } from '@cvc/proto';
import { StorageError, validateSegment } from '@cvc/storage';
import { CoordinatorError } from './errors.js';

/** What the coordinator keeps per clustering job in its KV bucket: the public job plus the current attempt's token. */
export interface ClusterJobDoc {
  readonly job: ClusterJob;
  /** Token of the current attempt ('' when none). */
  readonly token: string;
  /** Object key of the manifest of the dataset version clustered, fixed at submission. */
  readonly manifest: string;
  /** Object key of the source fold's best checkpoint. */
  readonly sourceCheckpoint: string;
  /** Records in the dataset version (the assignments a finish must carry). */
  readonly records: number;
  /** Object key of the latest CLUSTER_FINAL checkpoint ('' until the worker uploaded it). */
  readonly finalCheckpoint: string;
  /** Per attempt, `TOKEN:ITERATION` of the last progress applied, so a retried report is not added twice. */
  readonly reported?: string;
  /** Token of the attempt whose finish was recorded, so that attempt's retried FinishClusterJob is answered OK. */
  readonly finishedBy?: string;
  /**
   * When (the coordinator's clock, ms) the current attempt last showed it is
   * alive: its start, a progress report (the worker's cancel poll repeats the
   * last one every 10 s), a checkpoint. A RUNNING job whose attempt did so
   * recently refuses another delivery of its task (see live-attempt.ts).
   */
  readonly liveAtMs?: number;
}

export const jobKey = (id: string): string => `job.${id}`;

/** The methods a job may use. */
export const CLUSTER_METHODS = ['dcec', 'idec', 'dec'] as const;
export type ClusterMethod = (typeof CLUSTER_METHODS)[number];

export const FINAL_JOB_STATES: readonly ClusterJobState[] = [
  ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED,
  ClusterJobState.CLUSTER_JOB_STATE_FAILED,
  ClusterJobState.CLUSTER_JOB_STATE_CANCELLED,
];
/** States in which a job takes no more attempts or reports. */
export const ENDING_JOB_STATES: readonly ClusterJobState[] = [...FINAL_JOB_STATES, ClusterJobState.CLUSTER_JOB_STATE_FINALIZING];

/** Restores proto defaults after a JSON round trip. */
export function decodeJobDoc(doc: ClusterJobDoc): ClusterJobDoc {
  return {
    job: ClusterJob.fromPartial(doc.job),
    token: doc.token ?? '',
    manifest: doc.manifest ?? '',
    sourceCheckpoint: doc.sourceCheckpoint ?? '',
    records: doc.records ?? 0,
    finalCheckpoint: doc.finalCheckpoint ?? '',
    ...(typeof doc.reported === 'string' ? { reported: doc.reported } : {}),
    ...(typeof doc.finishedBy === 'string' ? { finishedBy: doc.finishedBy } : {}),
    ...(typeof doc.liveAtMs === 'number' ? { liveAtMs: doc.liveAtMs } : {}),
  };
}

/** The lowercase state name (`running`), for logs and metrics labels. */
export const jobStateName = (s: ClusterJobState): string => (ClusterJobState[s] ?? String(s)).replace('CLUSTER_JOB_STATE_', '').toLowerCase();

/** Defaults of a job spec's optional fields (k comes from the dataset). */
export const JOB_DEFAULTS = {
  gamma: 0.1,
  updateInterval: 140,
  tol: 0.001,
  maxIterations: 20_000,
  batchSize: 256,
  learningRate: 1e-3,
  seed: 42,
  /** Clusters when the dataset has no labels (an unlabelled image folder). */
  k: 10,
} as const;

/** A job spec with every field set. */
export type ResolvedJobSpec = ClusterJobSpec & {
  readonly method: ClusterMethod;
  readonly k: number;
  readonly gamma: number;
  readonly updateInterval: number;
  readonly tol: number;
  readonly maxIterations: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly seed: number;
};

const bad = (field: string, msg: string): never => {
  throw new CoordinatorError('INVALID_ARGUMENT', `spec.${field}: ${msg}`);
};

function segment(field: string, value: string, what: string): void {
  try {
    validateSegment(value, what);
  } catch (err) {
    if (!(err instanceof StorageError)) throw err;
    bad(field, err.message);
  }
}

/** `v` (or `dflt` when unset) checked to be an integer in [min, max]. */
function int(field: string, v: number | undefined, dflt: number, min: number, max: number): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < min || x > max) bad(field, `must be an integer in ${min}..${max}, got ${x}`);
  return x;
}

/** `v` (or `dflt`) checked to be a finite number in the range (`lowOpen`: above min, not at it). */
function num(field: string, v: number | undefined, dflt: number, min: number, max: number, lowOpen = false): number {
  const x = v ?? dflt;
  if (!Number.isFinite(x) || x > max || (lowOpen ? x <= min : x < min))
    bad(field, `must be a finite number ${lowOpen ? '>' : '>='} ${min} and <= ${max}, got ${x}`);
  return x;
}

/**
 * Checks the fields of a job spec that need no stored state and fills the
 * defaults (k from `classes`, the dataset's class count when it is labelled).
 * Throws INVALID_ARGUMENT naming the proto field (`spec.update_interval: ...`).
 */
export function resolveJobSpec(spec: ClusterJobSpec, classes: number | undefined): ResolvedJobSpec {
  const method = spec.method.toLowerCase();
  if (!(CLUSTER_METHODS as readonly string[]).includes(method)) bad('method', `must be one of ${CLUSTER_METHODS.join(', ')}, got '${spec.method}'`);
  if (spec.name) segment('name', spec.name, 'name');
  return {
    ...spec,
    method: method as ClusterMethod,
    k: int('k', spec.k, classes ?? JOB_DEFAULTS.k, 2, 1000),
    gamma: num('gamma', spec.gamma, JOB_DEFAULTS.gamma, 0, 1000),
    updateInterval: int('update_interval', spec.updateInterval, JOB_DEFAULTS.updateInterval, 1, 1_000_000),
    tol: num('tol', spec.tol, JOB_DEFAULTS.tol, 0, 1),
    maxIterations: int('max_iterations', spec.maxIterations, JOB_DEFAULTS.maxIterations, 1, 10_000_000),
    batchSize: int('batch_size', spec.batchSize, JOB_DEFAULTS.batchSize, 1, 65_536),
    learningRate: num('learning_rate', spec.learningRate, JOB_DEFAULTS.learningRate, 0, 10, true),
    seed: int('seed', spec.seed, JOB_DEFAULTS.seed, 0, 2 ** 31 - 1),
  };
}

/** Checks the identifiers of a spec before anything is read (run id, dataset, version). */
export function checkJobSpecNames(spec: ClusterJobSpec | undefined): ClusterJobSpec {
  if (!spec) throw new CoordinatorError('INVALID_ARGUMENT', 'spec is required');
  if (!spec.runId) bad('run_id', 'is required');
  segment('run_id', spec.runId, 'run id');
  if (spec.dataset) segment('dataset', spec.dataset, 'dataset');
  if (spec.datasetVersion) segment('dataset_version', spec.datasetVersion, 'dataset version');
  if (spec.fold !== undefined && (!Number.isInteger(spec.fold) || spec.fold < 0))
    bad('fold', `must be an integer >= 0 (unset: the best fold), got ${spec.fold}`);
  return spec;
}

/** Object keys of a job's artifacts. */
export const jobLayout = {
  prefix: (id: string) => `cluster-jobs/${validateSegment(id, 'job id', 128)}`,
  checkpoint: (id: string, iteration: number) => `${jobLayout.prefix(id)}/checkpoints/iter-${String(iteration).padStart(7, '0')}.ckpt`,
  final: (id: string) => `${jobLayout.prefix(id)}/final/model.ckpt`,
  result: (id: string) => `${jobLayout.prefix(id)}/result.json`,
  encoder: (id: string) => `${jobLayout.prefix(id)}/encoder`,
  assignments: (id: string) => `${jobLayout.prefix(id)}/assignments.csv`,
};
