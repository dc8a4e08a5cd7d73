/** Max absolute difference relative to the largest reference magnitude (kernel tests). */
export function relErr(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs((a[i] as number) - (ref[i] as number)));
    scale = Math.max(scale, Math.abs(ref[i] as number));
  }
  return diff / Math.max(scale, 1e-12);
}
