import type { SweepParam, SweepSpec } from '@cvc/proto';
import { MODEL_NAMES, runSpecSchema, UPSAMPLE_MODES } from '@cvc/model';
import type { z } from 'zod';
import { choiceOpt, floatOpt, intOpt, positiveInt } from './args.js';
import { UsageError } from './errors.js';
import { runSpecFromFlags } from './run-spec-flags.js';

/** How a sweep stops runs early: fold-aware ASHA, median stopping, or not at all. */
export const EARLY_STOPS = ['asha', 'median', 'none'] as const;
export type EarlyStop = (typeof EARLY_STOPS)[number];

const field = runSpecSchema.shape;

/**
 * The run-spec fields a sweep can vary, by their flag name, with the check
 * each value gets here (the coordinator checks again: it is the authority).
 * `upsample` is a run-spec field for a seed preset and a model-config field
 * for a config; either way the value is one of the up-sampling modes.
 */
const RUN_SPEC_PARAMS: Readonly<Record<string, { kind: 'integer' | 'number'; check: z.ZodType<number> } | { kind: 'choice'; choices: readonly string[] }>> = {
  'learning-rate': { kind: 'number', check: field.learningRate },
  'batch-size': { kind: 'integer', check: field.batchSize },
  epochs: { kind: 'integer', check: field.epochs },
  seed: { kind: 'integer', check: field.seed },
  upsample: { kind: 'choice', choices: UPSAMPLE_MODES },
  model: { kind: 'choice', choices: MODEL_NAMES },
};

/**
 * The model-config fields a sweep can vary, in kebab case: the config's
 * scalar fields, `kernel` (every encoder block's), `filters` (every encoder
 * block's, e.g. `32x64x128`) and `dense` (the hidden dense layers, `128x64`
 * or `none`). With a seed preset as the base, a changed config trains as a
 * custom model. Their values are checked by the coordinator, which rebuilds
 * and validates each configuration.
 */
export const MODEL_CONFIG_PARAMS = [
  'code-size',
  'output-kernel',
  'flatten-activation',
  'dense-activation',
  'code-activation',
  'output-activation',
  'init',
  'loss',
  'kernel',
  'filters',
  'dense',
] as const;

/** Every name `--grid` accepts, for messages. */
export const SWEEPABLE = [...Object.keys(RUN_SPEC_PARAMS), ...MODEL_CONFIG_PARAMS] as const;

/** The run-spec flag that a grid parameter of the same name would contradict. */
const BASE_FLAG: Readonly<Record<string, string>> = { 'learning-rate': 'learning-rate', 'batch-size': 'batch-size', epochs: 'epochs', seed: 'seed' };

const NAME = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
const INTEGER = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * One `--grid NAME=V1,V2,...`: a kebab-case name and its comma-separated
 * values, each non-empty and given once. A run-spec parameter's values are
 * checked like its flag (`--grid learning-rate=abc` is a usage error naming
 * the parameter and the value); a model-config parameter's only by the
 * coordinator.
 */
export function parseGridParam(text: string): SweepParam {
  const eq = text.indexOf('=');
  if (eq < 0) throw new UsageError(`--grid takes NAME=V1,V2,... (e.g. learning-rate=1e-3,3e-4), got '${text}'`);
  const name = text.slice(0, eq).trim();
  if (!NAME.test(name)) throw new UsageError(`--grid ${name || "''"}: a parameter name is kebab case, e.g. learning-rate`);
  if (!(SWEEPABLE as readonly string[]).includes(name)) throw new UsageError(`--grid ${name}: not a sweepable parameter (one of ${SWEEPABLE.join(', ')})`);
  const values = text
    .slice(eq + 1)
    .split(',')
    .map((v) => v.trim());
  values.forEach((v, i) => {
    if (v === '') throw new UsageError(`--grid ${name}: value ${i + 1} is empty, got '${text}'`);
    if (values.indexOf(v) !== i) throw new UsageError(`--grid ${name}: value '${v}' is given twice`);
    checkValue(name, v);
  });
  return { name, values };
}

function checkValue(name: string, v: string): void {
  const rule = RUN_SPEC_PARAMS[name];
  if (!rule) return;
  if (rule.kind === 'choice') {
    if (!rule.choices.includes(v)) throw new UsageError(`--grid ${name}: '${v}' must be one of ${rule.choices.join(', ')}`);
    return;
  }
  if (!(rule.kind === 'integer' ? INTEGER : DECIMAL).test(v))
    throw new UsageError(`--grid ${name}: '${v}' must be ${rule.kind === 'integer' ? 'an integer' : 'a number'}`);
  const r = rule.check.safeParse(Number(v));
  if (!r.success) throw new UsageError(`--grid ${name}: '${v}' ${r.error.issues[0]?.message ?? 'is invalid'}`);
}

/** `--rungs 1,3,9`: strictly increasing positive epoch counts, each below `epochs` when it is known. */
export function parseRungs(text: string, epochs: number | undefined): number[] {
  const rungs = text.split(',').map((p, i) => {
    const n = intOpt({ rungs: p.trim() }, 'rungs', undefined, positiveInt);
    if (n === undefined) throw new UsageError(`--rungs item ${i + 1} is empty, got '${text}'`);
    return n;
  });
  rungs.forEach((r, i) => {
    if (i > 0 && r <= (rungs[i - 1] as number)) throw new UsageError(`--rungs must increase, got '${text}'`);
    if (epochs !== undefined && r >= epochs) throw new UsageError(`--rungs ${r} is not below --epochs ${epochs}: a run is judged before its last epoch`);
  });
  return rungs;
}

/** The number of configurations a grid spans (the product of its value counts). */
export function gridSize(grid: readonly SweepParam[]): number {
  return grid.reduce((n, p) => n * p.values.length, 1);
}

/**
 * The SweepSpec of `cvc sweep submit` from its flags: the base run spec from
 * the run-submit flags (`--dataset`, `--model`/`--model-config`, `--folds`,
 * `--epochs`, ...), the repeatable `--grid`, `--random N` (with `--seed S`
 * seeding both the sampling and the runs' training), `--early-stop`,
 * `--rungs`, `--reduction-factor` and `--max-parallel-runs`. Everything
 * checkable without the dataset is checked here, before any connection.
 */
export async function sweepSpecFromFlags(values: Record<string, unknown>): Promise<SweepSpec> {
  const base = await runSpecFromFlags(values, 'sweep submit');
  const raw = values['grid'];
  const texts = Array.isArray(raw) ? (raw as string[]) : typeof raw === 'string' ? [raw] : [];
  if (texts.length === 0) throw new UsageError('sweep submit needs at least one --grid NAME=V1,V2,... (e.g. --grid learning-rate=1e-3,3e-4)');
  const grid = texts.map(parseGridParam);
  const seen = new Set<string>();
  for (const p of grid) {
    if (seen.has(p.name)) throw new UsageError(`--grid ${p.name} is given twice; list all its values in one --grid`);
    seen.add(p.name);
    const flag = BASE_FLAG[p.name];
    if (flag && values[flag] !== undefined) throw new UsageError(`--grid ${p.name} and --${flag} both set ${p.name}; give one`);
  }
  const earlyStop = choiceOpt(values, 'early-stop', EARLY_STOPS, 'asha');
  const random = intOpt(values, 'random', undefined, positiveInt);
  const configs = gridSize(grid);
  if (random !== undefined && random > configs) throw new UsageError(`--random ${random} is more than the ${configs} configurations of the grid`);
  if (earlyStop === 'none')
    for (const f of ['rungs', 'reduction-factor']) if (values[f] !== undefined) throw new UsageError(`--${f} has no effect with --early-stop none`);
  const rungs = typeof values['rungs'] === 'string' ? parseRungs(values['rungs'], seen.has('epochs') ? undefined : base.epochs) : [];
  const reductionFactor = floatOpt(values, 'reduction-factor');
  if (reductionFactor !== undefined && !(reductionFactor > 1))
    throw new UsageError(`--reduction-factor must be > 1, got '${String(values['reduction-factor'])}'`);
  const maxParallelRuns = intOpt(values, 'max-parallel-runs', undefined, positiveInt);
  return {
    name: base.name,
    base,
    grid,
    ...(random !== undefined ? { random, ...(base.seed !== undefined ? { randomSeed: base.seed } : {}) } : {}),
    earlyStop,
    rungs,
    ...(reductionFactor !== undefined ? { reductionFactor } : {}),
    ...(maxParallelRuns !== undefined ? { maxParallelRuns } : {}),
  };
}
