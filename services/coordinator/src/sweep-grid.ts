import { createRng } from '@cvc/core';
import { caeConfig, presetConfig, type ModelConfigInput, type ModelName } from '@cvc/model';
import { RunSpec, type SweepSpec } from '@cvc/proto';
import { validateSegment, StorageError } from '@cvc/storage';
import { CoordinatorError } from './errors.js';
import { resolveSpec } from './run-doc.js';

/** How a sweep stops runs early: fold-aware ASHA, median stopping, or not at all. */
export type EarlyStop = 'asha' | 'median' | 'none';
export const EARLY_STOP_MODES: readonly EarlyStop[] = ['asha', 'median', 'none'];

/** One configuration of a sweep: its index, the swept values by parameter name, and the run spec it trains. */
export interface SweepTrialPlan {
  readonly index: number;
  readonly params: Readonly<Record<string, string>>;
  readonly spec: RunSpec;
}

/** A sweep spec with every default resolved and every configuration expanded and checked. */
export interface SweepPlan {
  readonly name: string;
  readonly trials: readonly SweepTrialPlan[];
  readonly earlyStop: EarlyStop;
  /** Epoch counts at which runs are judged (strictly increasing, each below the largest epoch count of the trials). */
  readonly rungs: readonly number[];
  /** ASHA's eta (> 1). */
  readonly reductionFactor: number;
  readonly maxParallelRuns: number;
}

/** Most configurations a grid may have before sampling (a grid beyond it must use `random`). */
export const MAX_GRID = 100_000;
/** Most trials a sweep may run. */
export const MAX_TRIALS = 1000;

const bad = (msg: string): never => {
  throw new CoordinatorError('INVALID_ARGUMENT', msg);
};

type Kind = 'number' | 'int' | 'string' | 'int-list';
/** Run-spec fields a sweep can set, by kebab-case name. */
const SPEC_PARAMS = {
  'learning-rate': { field: 'learningRate', kind: 'number' },
  'batch-size': { field: 'batchSize', kind: 'int' },
  epochs: { field: 'epochs', kind: 'int' },
  seed: { field: 'seed', kind: 'int' },
  upsample: { field: 'upsample', kind: 'string' },
  model: { field: 'model', kind: 'string' },
} as const satisfies Record<string, { field: keyof RunSpec; kind: Kind }>;

/**
 * Model-config fields a sweep can set, by kebab-case name. `kernel` sets every
 * encoder block's kernel; `filters` (e.g. `32x64x128`) every encoder block's
 * filters (the `cae` preset may change the block count); `dense` the hidden
 * dense layers (`128x64`, or `none`).
 */
const CONFIG_PARAMS = {
  'code-size': { field: 'codeSize', kind: 'int' },
  'output-kernel': { field: 'outputKernel', kind: 'int' },
  'flatten-activation': { field: 'flattenActivation', kind: 'string' },
  'dense-activation': { field: 'denseActivation', kind: 'string' },
  'code-activation': { field: 'codeActivation', kind: 'string' },
  'output-activation': { field: 'outputActivation', kind: 'string' },
  init: { field: 'init', kind: 'string' },
  loss: { field: 'loss', kind: 'string' },
  kernel: { field: 'kernel', kind: 'int' },
  filters: { field: 'filters', kind: 'int-list' },
  dense: { field: 'dense', kind: 'int-list' },
} as const satisfies Record<string, { field: string; kind: Kind }>;

type SpecParam = keyof typeof SPEC_PARAMS;
type ConfigParam = keyof typeof CONFIG_PARAMS;

/** Every parameter name a sweep grid takes (run-spec fields, then model-config fields). */
export const SWEEP_PARAM_NAMES: readonly string[] = [...Object.keys(SPEC_PARAMS), ...Object.keys(CONFIG_PARAMS)];

const isSpecParam = (n: string): n is SpecParam => Object.hasOwn(SPEC_PARAMS, n);
const isConfigParam = (n: string): n is ConfigParam => Object.hasOwn(CONFIG_PARAMS, n);

/** Parses one value as its parameter's kind; the schema checks bounds and enums later. */
function parseValue(name: string, kind: Kind, raw: string): number | string | number[] {
  const v = raw.trim();
  if (kind === 'string') {
    if (v === '') bad(`grid ${name}: a value is empty`);
    return v;
  }
  if (kind === 'int-list') {
    if (v === 'none' || v === '') return [];
    return v.split(/[x/:]/).map((p) => {
      const n = Number(p);
      if (p.trim() === '' || !Number.isInteger(n)) bad(`grid ${name}: '${raw}' is not a list of integers such as 32x64x128`);
      return n;
    });
  }
  const n = Number(v);
  if (v === '' || !Number.isFinite(n)) bad(`grid ${name}: '${raw}' is not a number`);
  if (kind === 'int' && !Number.isInteger(n)) bad(`grid ${name}: '${raw}' is not an integer`);
  return n;
}

/** The config model-config parameters are applied to: the base spec's JSON, or the preset its model names. */
function baseConfig(base: RunSpec): { config: ModelConfigInput; preset: ModelName | undefined } {
  if (base.modelConfigJson) {
    try {
      return { config: JSON.parse(base.modelConfigJson) as ModelConfigInput, preset: undefined };
    } catch (err) {
      return bad(`base.model_config_json: not JSON (${(err as Error).message})`);
    }
  }
  const model = (base.model || 'seed-mnist') as ModelName;
  const config = presetConfig(model, { upsample: (base.upsample || undefined) as 'nearest' | undefined });
  if (!config) return bad(`base.model: ${base.model} has no preset config to sweep model-config fields over (give base.model_config_json)`);
  return { config, preset: model };
}

function applyConfigParam(config: ModelConfigInput, preset: ModelName | undefined, name: ConfigParam, value: number | string | number[]): ModelConfigInput {
  const { field } = CONFIG_PARAMS[name];
  if (field === 'kernel') return { ...config, encoder: config.encoder.map((b) => ({ ...b, kernel: value as number })) };
  if (field === 'dense') return { ...config, dense: value as number[] };
  if (field === 'filters') {
    const filters = value as number[];
    if (filters.length === config.encoder.length) return { ...config, encoder: config.encoder.map((b, i) => ({ ...b, filters: filters[i] ?? b.filters })) };
    if (preset === 'cae' && filters.length > 0) return { ...config, encoder: caeConfig({ filters, kernel: config.encoder[0]?.kernel ?? 3 }).encoder };
    return bad(`grid filters: '${filters.join('x')}' has ${filters.length} blocks; the base model config has ${config.encoder.length}`);
  }
  return { ...config, [field]: value };
}

/** The run spec of one configuration: the base with the swept values set (model-config values produce `model_config_json`). */
export function trialSpec(base: RunSpec, params: Readonly<Record<string, string>>): RunSpec {
  let spec: RunSpec = RunSpec.fromPartial(base);
  const configParams = Object.keys(params).filter(isConfigParam);
  for (const [name, raw] of Object.entries(params)) {
    if (!isSpecParam(name)) continue;
    const { field, kind } = SPEC_PARAMS[name];
    spec = { ...spec, [field]: parseValue(name, kind, raw) };
  }
  if (configParams.length > 0) {
    if (params['model'] !== undefined) bad('grid model: cannot be swept together with model-config fields (sweep one model)');
    const { config: start, preset } = baseConfig(spec);
    let config = start;
    for (const name of configParams) config = applyConfigParam(config, preset, name, parseValue(name, CONFIG_PARAMS[name].kind, params[name] ?? ''));
    // A spec's up-sampling and its config's must agree: the swept (or base) value goes into both.
    if (spec.upsample) config = { ...config, upsample: spec.upsample as 'nearest' };
    // The seed presets are fixed shapes: a changed config is a custom model.
    const model = spec.model === 'seed-mnist' || spec.model === 'seed-cifar' || spec.model === '' ? 'custom' : spec.model;
    spec = { ...spec, model, modelConfigJson: JSON.stringify(config) };
  } else if (params['upsample'] !== undefined && spec.modelConfigJson) {
    const config = baseConfig(spec).config;
    spec = { ...spec, modelConfigJson: JSON.stringify({ ...config, upsample: spec.upsample }) };
  }
  return spec;
}

/** resolveSpec's check, its message prefixed with what was being checked. */
function check(spec: RunSpec, what: string): void {
  try {
    resolveSpec(spec);
  } catch (err) {
    if (err instanceof CoordinatorError) throw new CoordinatorError('INVALID_ARGUMENT', `${what}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** Configurations of the grid in row-major order (the last parameter varies fastest), or the sampled subset. */
function configurations(grid: readonly { name: string; values: readonly string[] }[], random: number | undefined, seed: number): Record<string, string>[] {
  const sizes = grid.map((p) => p.values.length);
  const total = sizes.reduce((a, b) => a * b, 1);
  const at = (i: number): Record<string, string> => {
    const out: Record<string, string> = {};
    let rest = i;
    for (let k = grid.length - 1; k >= 0; k--) {
      const p = grid[k];
      const n = sizes[k] ?? 1;
      if (p) out[p.name] = p.values[rest % n] ?? '';
      rest = Math.floor(rest / n);
    }
    // Keep the grid's parameter order in the record.
    return Object.fromEntries(grid.map((p) => [p.name, out[p.name] ?? '']));
  };
  if (random === undefined) {
    if (total > MAX_GRID) bad(`the grid has ${total} configurations, more than ${MAX_GRID}: sample some with random`);
    if (total > MAX_TRIALS) bad(`the grid has ${total} configurations, more than the ${MAX_TRIALS} a sweep may run: sample some with random`);
    return Array.from({ length: total }, (_, i) => at(i));
  }
  if (!Number.isInteger(random) || random < 1) bad(`random: must be an integer >= 1, got ${random}`);
  if (random > total) bad(`random: ${random} configurations asked for, the grid has only ${total}`);
  if (random > MAX_TRIALS) bad(`random: ${random} is more than the ${MAX_TRIALS} trials a sweep may run`);
  // Sampling without replacement by rejection: cheap while random <= MAX_TRIALS, whatever the grid's size.
  const rng = createRng(seed);
  const picked = new Set<number>();
  while (picked.size < random) picked.add(Math.floor(rng.next() * total));
  return [...picked].sort((a, b) => a - b).map(at);
}

/** Default rungs: 1, eta, eta^2, ... (rounded) below `epochs`. */
export function defaultRungs(epochs: number, eta: number): number[] {
  const out: number[] = [];
  for (let r = 1; Math.round(r) < epochs; r *= eta) {
    const v = Math.round(r);
    if (out[out.length - 1] !== v) out.push(v);
  }
  return out;
}

/**
 * Validates a sweep spec and expands it into its configurations: parameter
 * names are the run spec's fields in kebab case (learning-rate, batch-size,
 * epochs, seed, upsample, model) or model-config fields (code-size, kernel,
 * filters, dense, init, loss, output-kernel, *-activation); each value is
 * parsed and checked, alone and in every combination, with the run spec's
 * schema (`resolveSpec`). Throws INVALID_ARGUMENT naming the parameter and
 * value. The dataset's fit is checked by the caller (it needs the catalog).
 */
export function planSweep(spec: SweepSpec | undefined): SweepPlan {
  if (!spec) return bad('spec is required');
  if (!spec.base) return bad('spec.base is required (the run spec every trial starts from)');
  if (spec.name) {
    try {
      validateSegment(spec.name, 'sweep name');
    } catch (err) {
      if (!(err instanceof StorageError)) throw err;
      bad(`spec.name: ${err.message}`);
    }
  }
  const base = RunSpec.fromPartial(spec.base);
  check(base, 'base');
  if (spec.grid.length === 0) bad('grid: at least one parameter with values is required');
  const seen = new Set<string>();
  for (const p of spec.grid) {
    if (!isSpecParam(p.name) && !isConfigParam(p.name)) bad(`grid: unknown parameter '${p.name}' (known: ${SWEEP_PARAM_NAMES.join(', ')})`);
    if (seen.has(p.name)) bad(`grid: parameter '${p.name}' is given twice`);
    seen.add(p.name);
    if (p.values.length === 0) bad(`grid ${p.name}: no values`);
    if (new Set(p.values.map((v) => v.trim())).size !== p.values.length) bad(`grid ${p.name}: a value is given twice`);
    // Each value alone, so the error names the value that is wrong.
    for (const v of p.values) check(trialSpec(base, { [p.name]: v }), `grid ${p.name}=${v}`);
  }
  const configs = configurations(spec.grid, spec.random, spec.randomSeed ?? 0);
  const trials = configs.map((params, index) => {
    const s = trialSpec(base, params);
    const label = Object.entries(params)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    check(s, `configuration ${index} (${label})`);
    return { index, params, spec: s };
  });
  const earlyStop = (spec.earlyStop || 'asha') as EarlyStop;
  if (!EARLY_STOP_MODES.includes(earlyStop)) bad(`early_stop: '${spec.earlyStop}' is not one of ${EARLY_STOP_MODES.join(', ')}`);
  const eta = spec.reductionFactor ?? 3;
  if (!Number.isFinite(eta) || eta <= 1) bad(`reduction_factor: must be a number > 1, got ${eta}`);
  const maxEpochs = Math.max(...trials.map((t) => resolveSpec(t.spec).epochs));
  let rungs: number[];
  if (earlyStop === 'none') {
    if (spec.rungs.length > 0) bad('rungs: given with early_stop none (nothing judges them)');
    rungs = [];
  } else if (spec.rungs.length > 0) {
    rungs = [...spec.rungs];
    rungs.forEach((r, i) => {
      if (!Number.isInteger(r) || r < 1) bad(`rungs: ${r} is not an epoch count >= 1`);
      if (i > 0 && r <= (rungs[i - 1] ?? 0)) bad(`rungs: must increase, got ${rungs.join(',')}`);
      if (r >= maxEpochs) bad(`rungs: ${r} is not below the epoch count ${maxEpochs} (a run is judged before it ends)`);
    });
  } else {
    rungs = defaultRungs(maxEpochs, eta);
  }
  const maxParallelRuns = spec.maxParallelRuns ?? trials.length;
  if (!Number.isInteger(maxParallelRuns) || maxParallelRuns < 1) bad(`max_parallel_runs: must be an integer >= 1, got ${maxParallelRuns}`);
  return { name: spec.name, trials, earlyStop, rungs, reductionFactor: eta, maxParallelRuns };
}
