import type { z } from 'zod';
import { ConfigError } from './errors.js';

/**
 * Options -> defaults -> resolved once: parses `input` with `schema` and turns
 * the first zod issue into a `ConfigError` that names the field.
 */
export function resolveOptions<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = issue && issue.path.length > 0 ? issue.path.join('.') : what;
  throw new ConfigError(path, issue?.message ?? 'invalid value', { cause: parsed.error });
}
