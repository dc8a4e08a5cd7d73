import { textWidth } from './render.js';

/** `s`, cut and ended with an ellipsis where needed so it is at most `max` pixels wide at `size`. */
export function fitText(s: string, max: number, size: number, bold = false): string {
  if (textWidth(s, size, bold) <= max) return s;
  let lo = 0;
  let hi = s.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (textWidth(`${s.slice(0, mid)}…`, size, bold) <= max) lo = mid;
    else hi = mid - 1;
  }
  return lo === 0 ? '' : `${s.slice(0, lo)}…`;
}
