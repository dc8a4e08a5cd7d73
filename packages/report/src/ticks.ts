/** About `n` round tick values (steps of 1, 2, 2.5 or 5 x 10^k) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, n = 5): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const step0 = span / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(6));
  return out;
}

/** A tick value as short text: 3 significant digits, no trailing zeros. */
export function tickLabel(t: number): string {
  if (t === 0) return '0';
  return Math.abs(t) >= 1e4 || Math.abs(t) < 1e-3 ? t.toExponential(1) : String(+t.toPrecision(3));
}
