import { readFile } from 'node:fs/promises';
import {
  caeConfig,
  describeConfigIssue,
  INITS,
  LOSSES,
  MODEL_NAMES,
  modelConfigSchema,
  UPSAMPLE_MODES,
  type CaeParams,
  type ModelConfigInput,
  type ModelName,
  type Upsample,
} from '@cvc/model';
import { choiceOpt, intOpt, positiveInt } from './args.js';
import { UsageError } from './errors.js';

/** The parseArgs options of the model flags (shared by `cvc run submit` and `cvc cv --local`). */
export const MODEL_FLAG_OPTIONS = {
  model: { type: 'string' },
  'model-config': { type: 'string' },
  filters: { type: 'string' },
  'code-size': { type: 'string' },
  kernel: { type: 'string' },
  dense: { type: 'string' },
  init: { type: 'string' },
  loss: { type: 'string' },
  'output-activation': { type: 'string' },
  upsample: { type: 'string' },
} as const;

/** What `--model` chooses (the help lists these): every model name but `custom`, which only labels a --model-config run. */
const PRESET_NAMES = MODEL_NAMES.filter((m): m is Exclude<ModelName, 'custom'> => m !== 'custom');

/** The `cae` flags; any of them with another model is a usage error. */
const CAE_FLAGS = ['filters', 'code-size', 'kernel', 'dense', 'init', 'loss', 'output-activation'] as const;

/** The chosen model: a preset name and, unless a seed preset, its config (no input shape: that is the dataset's). */
export interface ModelChoice {
  readonly model: ModelName;
  /** Absent for the seed presets (resolved where the dataset is known). */
  readonly config?: ModelConfigInput;
  /** `--upsample` for a seed preset (a config carries its own). */
  readonly upsample?: Upsample;
}

/** `--filters 32,64,128`: a comma-separated list of positive integers. */
function intList(values: Record<string, unknown>, name: string): number[] | undefined {
  const v = values[name];
  if (typeof v !== 'string') return undefined;
  const parts = v.split(',');
  return parts.map((p, i) => {
    const n = intOpt({ [name]: p.trim() }, name, undefined, positiveInt);
    if (n === undefined) throw new UsageError(`--${name} item ${i + 1} is empty, got '${v}'`);
    return n;
  });
}

/**
 * `--model NAME`, `--model-config FILE` or `--model cae --filters 32,64,128
 * --code-size 32 [--kernel 3] [--dense 128] [--init he] [--loss mse]
 * [--output-activation sigmoid]`. A config (file or flags) is checked with
 * the model-config schema; a bad one is a usage error naming the file (or
 * the flags) and the field, e.g. `cae.json: encoder[2].filters: must be >= 1`.
 * The fit to the dataset (input shape, geometry) is checked where the dataset
 * is known (the coordinator, or `cv --local`).
 */
export async function modelFromFlags(values: Record<string, unknown>, command: string): Promise<ModelChoice> {
  const file = values['model-config'];
  const upsample = values['upsample'] === undefined ? undefined : choiceOpt(values, 'upsample', UPSAMPLE_MODES, 'nearest');
  const caeGiven = CAE_FLAGS.filter((f) => values[f] !== undefined);
  if (typeof file === 'string') {
    if (values['model'] !== undefined && values['model'] !== 'custom')
      throw new UsageError(`${command}: --model-config takes no --model (the file is the model)`);
    if (caeGiven.length > 0) throw new UsageError(`${command}: --${caeGiven[0]} is a --model cae flag; --model-config's file holds the whole model`);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(
        `${file}: cannot be read (${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a directory' : (code ?? (err as Error).message)})`,
      );
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`${file}: cannot read it as JSON (${(err as Error).message})`);
    }
    return { model: 'custom', config: checked(raw, file, upsample) };
  }
  if (values['model'] === undefined) throw new UsageError(`${command} needs --model (${PRESET_NAMES.join(', ')}) or --model-config FILE`);
  // `custom` is how a run with --model-config is labelled, not a model of its own.
  if (values['model'] === 'custom') throw new UsageError(`${command}: --model custom needs --model-config FILE`);
  const model = choiceOpt(values, 'model', PRESET_NAMES, 'seed-mnist');
  if (model !== 'cae') {
    if (caeGiven.length > 0) throw new UsageError(`${command}: --${caeGiven[0]} applies to --model cae, not ${model}`);
    return { model, ...(upsample ? { upsample } : {}) };
  }
  const filters = intList(values, 'filters');
  const dense = intList(values, 'dense');
  const codeSize = intOpt(values, 'code-size', undefined, positiveInt);
  const kernel = intOpt(values, 'kernel', undefined, positiveInt);
  const init = values['init'] === undefined ? undefined : choiceOpt(values, 'init', [...INITS, 'he'] as const, 'glorot-uniform');
  const loss = values['loss'] === undefined ? undefined : choiceOpt(values, 'loss', LOSSES, 'mse');
  const outputActivation =
    values['output-activation'] === undefined ? undefined : choiceOpt(values, 'output-activation', ['relu', 'sigmoid', 'linear'] as const, 'relu');
  const params: CaeParams = {
    ...(filters ? { filters } : {}),
    ...(dense ? { dense } : {}),
    ...(codeSize !== undefined ? { codeSize } : {}),
    ...(kernel !== undefined ? { kernel } : {}),
    ...(init ? { init } : {}),
    ...(loss ? { loss } : {}),
    ...(outputActivation ? { outputActivation } : {}),
  };
  return { model: 'cae', config: checked(caeConfig(params), '--model cae', upsample) };
}

/** The config checked with the schema (defaults not filled in: the resolved form is the coordinator's). */
function checked(raw: unknown, source: string, upsample: Upsample | undefined): ModelConfigInput {
  let config = raw;
  if (upsample && typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
    const own = (raw as Record<string, unknown>)['upsample'];
    if (own !== undefined && own !== upsample) throw new UsageError(`${source}: upsample ${JSON.stringify(own)} conflicts with --upsample ${upsample}`);
    config = { ...raw, upsample };
  }
  const r = modelConfigSchema.safeParse(config);
  if (!r.success) throw new UsageError(`${source}: ${describeConfigIssue(r.error)}`);
  return config as ModelConfigInput;
}
