import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';
import { describeIssue } from '@cvc/core';
import { UsageError } from './errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * `--epochs -3` as `--epochs=-3`: node's parser refuses a value that starts
 * with a dash as ambiguous, which would hide the real problem (a negative
 * number) behind a confusing message. Only a string option followed by
 * something that reads as a negative number is joined.
 */
function withNegativeNumbers(argv: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') return [...out, ...argv.slice(i)];
    const next = argv[i + 1];
    const opt = a.startsWith('--') ? options[a.slice(2)] : undefined;
    if (opt?.type === 'string' && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** Parses `argv` strictly; unknown options and missing values become UsageErrors. */
export function parse<O extends Options>(
  argv: string[],
  options: O,
  command: string,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args: withNegativeNumbers(argv, options), options, strict: true, allowPositionals: true });
    return { values: r.values, positionals: r.positionals };
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message.replace(/\. To specify a positional.*$/s, '')}`);
  }
}

const INTEGER = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
const nonNegativeInt = z.number().int().min(0);
/** A count that must be at least 1 (`--limit`, `--threads`, `--workers`, ...). */
export const positiveInt = z.number().int().min(1);
const finiteNumber = z.number();

/** The text of an option value, for messages. */
const text = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

/**
 * A numeric option parsed strictly (decimal digits only: no '', '0x10',
 * '1.5' for an integer, 'NaN' or 'Infinity') and then checked with `check`,
 * a zod number schema such as a field of `runSpecSchema`; a bad value is a
 * UsageError (exit 2) naming the option.
 */
function numberOpt(values: Record<string, unknown>, name: string, kind: 'integer' | 'number', check: z.ZodType<number>): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !(kind === 'integer' ? INTEGER : DECIMAL).test(v.trim())) {
    throw new UsageError(`--${name} must be ${kind === 'integer' ? 'an integer' : 'a number'}, got '${text(v)}'`);
  }
  const n = Number(v);
  const r = check.safeParse(n);
  if (!r.success) throw new UsageError(`--${name} ${r.error.issues[0] ? describeIssue(r.error.issues[0]) : 'is invalid'}, got '${text(v)}'`);
  return n;
}

/**
 * An integer option, or `fallback` when absent; checked with `check`
 * (default: a non-negative integer). A bad value names the option.
 */
export function intOpt(
  values: Record<string, unknown>,
  name: string,
  fallback: number | undefined,
  check: z.ZodType<number> = nonNegativeInt,
): number | undefined {
  return numberOpt(values, name, 'integer', check) ?? fallback;
}

/** A number option (undefined when absent), checked with `check` (default: any finite number). */
export function floatOpt(values: Record<string, unknown>, name: string, check: z.ZodType<number> = finiteNumber): number | undefined {
  return numberOpt(values, name, 'number', check);
}

export function choiceOpt<T extends string>(values: Record<string, unknown>, name: string, choices: readonly T[], fallback: T): T {
  const v = values[name];
  if (v === undefined) return fallback;
  if (!choices.includes(v as T)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${typeof v === 'string' ? v : JSON.stringify(v)}'`);
  return v as T;
}

/**
 * Refuses, naming the first one, any of `flags` that was given: flags of
 * another subcommand (`cvc run list --epochs 3`) would otherwise be parsed
 * and silently ignored. `owner` says where the flag belongs.
 */
export function refuseFlags(values: Record<string, unknown>, flags: readonly string[], owner: string): void {
  for (const f of flags) if (values[f] !== undefined) throw new UsageError(`--${f} applies to ${owner}`);
}
