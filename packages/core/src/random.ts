/**
 * A small seeded PRNG (mulberry32 seeded through splitmix32). Everything that
 * must be reproducible (fold assignment, shuffling, weight initialisation)
 * draws from one of these, never from Math.random.
 */
export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** The generator's state, for resuming a sequence exactly. */
  state(): number;
}

function splitmix32(seed: number): number {
  let z = (seed + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** A generator seeded from any 32-bit integer (other numbers are truncated). */
export function createRng(seed: number, rawState?: number): Rng {
  let a = rawState ?? splitmix32(seed | 0);
  const next = (): number => {
    a = (a + 0x6d2b79f5) | 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    state: () => a,
  };
}

/** Derives an independent seed from a base seed and a list of integers. */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = splitmix32(seed | 0);
  for (const p of parts) h = splitmix32((h ^ Math.imul(p | 0, 0x27d4eb2d)) | 0);
  return h | 0;
}

/** Fisher-Yates shuffle in place. */
export function shuffleInPlace<T extends { length: number; [i: number]: unknown }>(arr: T, rng: Rng): T {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = arr[i];
    arr[i] = arr[j];
    arr[j] = tmp;
  }
  return arr;
}

/** A permutation of 0..n-1 as an Int32Array. */
export function permutation(n: number, rng: Rng): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffleInPlace(p, rng);
}
