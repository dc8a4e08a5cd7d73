import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parses `argv` strictly; unknown options and missing values become UsageErrors. */
export function parse<O extends Options>(argv: string[], options: O, command: string): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
    return { values: r.values, positionals: r.positionals };
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message.replace(/\. To specify a positional.*$/s, '')}`);
  }
}

/** An integer option, or `fallback` when absent; a bad value names the option. */
export function intOpt(values: Record<string, unknown>, name: string, fallback: number | undefined): number | undefined {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got '${typeof v === 'string' ? v : JSON.stringify(v)}'`);
  return n;
}

export function floatOpt(values: Record<string, unknown>, name: string): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${typeof v === 'string' ? v : JSON.stringify(v)}'`);
  return n;
}

export function choiceOpt<T extends string>(values: Record<string, unknown>, name: string, choices: readonly T[], fallback: T): T {
  const v = values[name];
  if (v === undefined) return fallback;
  if (!choices.includes(v as T)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${typeof v === 'string' ? v : JSON.stringify(v)}'`);
  return v as T;
}
