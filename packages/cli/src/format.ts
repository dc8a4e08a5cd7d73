import type { MeanStd } from '@cvc/core';

/** A number with `digits` significant decimals, e.g. 0.010523. */
export function num(v: number, digits = 5): string {
  if (!Number.isFinite(v)) return String(v);
  return v.toFixed(digits);
}

export function pm(m: MeanStd, digits = 5): string {
  return `${num(m.mean, digits)} +- ${num(m.std, digits)}`;
}

/** Left-aligned text table with a header rule. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/**
 * The table of a list command, or `empty` (a line saying there is nothing
 * yet and how to start one) when there are no rows: a header alone reads
 * as a failed or cut-off listing.
 */
export function listTable(header: readonly string[], rows: readonly (readonly string[])[], empty: string): string {
  return rows.length === 0 ? empty : table(header, rows);
}

export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return m < 60 ? `${m}m${String(s).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
