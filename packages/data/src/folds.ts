import { z } from 'zod';
import { createRng, describeIssue, permutation, shuffleInPlace, ConfigError } from '@cvc/core';

/** `stratified` (default): class-balanced seeded folds. `seed`: the seed project's scheme. */
export type FoldScheme = 'stratified' | 'seed';
export const FOLD_SCHEMES: readonly FoldScheme[] = ['stratified', 'seed'];

/** The fold count K when none is given (dataset import, local CV, a run spec). */
export const DEFAULT_FOLDS = 5;
/**
 * What a fold count K may be: an integer 2..100. The one definition of its
 * bounds, used by the dataset import (`--folds`), local CV and the
 * coordinator's run-spec validation.
 */
export const foldCountSchema = z.number().int().min(2).max(100);

function checkK(k: number, n: number): void {
  const r = foldCountSchema.safeParse(k);
  if (!r.success) throw new ConfigError('folds', `${r.error.issues[0] ? describeIssue(r.error.issues[0]) : 'must be an integer 2..100'}, got ${k}`);
  if (k > n) throw new ConfigError('folds', `${k} folds need at least ${k} images, the dataset has ${n}`);
}

/**
 * Stratified K-fold: each class's indices are shuffled (seeded) and dealt
 * round-robin over the folds, continuing the deal from class to class, so
 * fold sizes differ by at most one and each class is spread evenly.
 * Returns K sorted index arrays that partition 0..labels.length-1.
 */
export function stratifiedKFold(labels: Uint8Array, k: number, seed: number): Int32Array[] {
  checkK(k, labels.length);
  const rng = createRng(seed);
  const byClass = new Map<number, number[]>();
  labels.forEach((l, i) => {
    const list = byClass.get(l);
    if (list) list.push(i);
    else byClass.set(l, [i]);
  });
  const folds: number[][] = Array.from({ length: k }, () => []);
  let next = 0;
  for (const cls of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = shuffleInPlace(byClass.get(cls) as number[], rng);
    for (const i of idx) {
      (folds[next] as number[]).push(i);
      next = (next + 1) % k;
    }
  }
  return folds.map((f) => Int32Array.from(f).sort());
}

/**
 * The seed's MNIST scheme: a seeded random permutation cut into K contiguous
 * folds of equal size (the first n mod K folds get one more).
 */
export function randomEqualFolds(n: number, k: number, seed: number): Int32Array[] {
  checkK(k, n);
  const perm = permutation(n, createRng(seed));
  const folds: Int32Array[] = [];
  let at = 0;
  for (let f = 0; f < k; f++) {
    const size = Math.floor(n / k) + (f < n % k ? 1 : 0);
    folds.push(perm.slice(at, at + size).sort());
    at += size;
  }
  return folds;
}

/** Contiguous folds given by part sizes (CIFAR-10's official batches). */
export function partFolds(sizes: readonly number[]): Int32Array[] {
  let at = 0;
  return sizes.map((s) => {
    const f = new Int32Array(s);
    for (let i = 0; i < s; i++) f[i] = at + i;
    at += s;
    return f;
  });
}

/**
 * A seeded stratified subset of `n` indices (sorted): what `--limit` keeps,
 * or the test fraction an image import holds out. With `leaveOnePerClass`
 * the subset never takes a class's last image (a held-out test set must
 * leave every class a training image); `n` must then be at most
 * `maxSubsetLeavingOne(labels)` (a RangeError otherwise).
 */
export function stratifiedSubset(labels: Uint8Array, n: number, seed: number, opts: { leaveOnePerClass?: boolean } = {}): Int32Array {
  const leave = opts.leaveOnePerClass === true ? 1 : 0;
  if (leave === 1 && n > maxSubsetLeavingOne(labels))
    throw new RangeError(`a subset of ${n} that leaves each class an image is not possible: at most ${maxSubsetLeavingOne(labels)}`);
  if (n >= labels.length) return Int32Array.from(labels.keys());
  // Dealing over ceil(len/n) folds and keeping the first n of the dealt order keeps classes balanced.
  const rng = createRng(seed);
  const byClass = new Map<number, number[]>();
  labels.forEach((l, i) => {
    const list = byClass.get(l);
    if (list) list.push(i);
    else byClass.set(l, [i]);
  });
  const queues = [...byClass.keys()].sort((a, b) => a - b).map((c) => shuffleInPlace(byClass.get(c) as number[], rng));
  const cap = queues.map((q) => q.length - leave);
  const quota = queues.map((q, c) => Math.min(cap[c] as number, Math.floor((q.length * n) / labels.length)));
  let left = n - quota.reduce((a, b) => a + b, 0);
  for (let c = 0; left > 0; c = (c + 1) % queues.length) {
    if ((quota[c] as number) < (cap[c] as number)) {
      quota[c] = (quota[c] as number) + 1;
      left--;
    }
  }
  const out: number[] = [];
  queues.forEach((q, c) => out.push(...q.slice(0, quota[c])));
  return Int32Array.from(out).sort();
}

/** The largest subset `stratifiedSubset(..., { leaveOnePerClass: true })` can take: every image but one per class. */
export function maxSubsetLeavingOne(labels: Uint8Array): number {
  return labels.length - new Set(labels).size;
}
