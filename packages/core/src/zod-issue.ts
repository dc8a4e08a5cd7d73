import type { z } from 'zod';

/**
 * One zod issue about a single value as a short rule, for messages that name
 * the field themselves (`spec.epochs: must be >= 1, got 0`, `--epochs must be
 * >= 1, got '-3'`): bounds, "an integer", "a finite number" (zod 4 refuses NaN
 * and +-Infinity as numbers), "one of ...". Other issues keep zod's message.
 */
export function describeIssue(issue: z.core.$ZodIssue): string {
  const numeric = (origin: string): boolean => origin === 'number' || origin === 'int';
  switch (issue.code) {
    case 'too_small':
      return numeric(issue.origin) ? `must be ${issue.inclusive ? '>=' : '>'} ${issue.minimum}` : issue.message;
    case 'too_big':
      return numeric(issue.origin) ? `must be ${issue.inclusive ? '<=' : '<'} ${issue.maximum}` : issue.message;
    case 'invalid_type':
      if (issue.expected === 'int') return 'must be an integer';
      if (issue.expected === 'number') return 'must be a finite number';
      return issue.message;
    case 'invalid_value':
      return `must be one of ${issue.values.map(String).join(', ')}`;
    default:
      return issue.message;
  }
}
