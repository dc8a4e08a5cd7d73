import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '@cvc/core';
import { stratifiedKFold, randomEqualFolds, stratifiedSubset, classHistogram } from './index.js';

function assertPartition(folds: Int32Array[], n: number): void {
  const seen = new Uint8Array(n);
  for (const f of folds) for (const i of f) seen[i] = (seen[i] as number) + 1;
  assert.ok(
    seen.every((c) => c === 1),
    'every index in exactly one fold',
  );
}

test('stratified folds partition the data, balance classes and are reproducible', () => {
  // Unbalanced classes: 0 has 53 images, 1 has 31, 2 has 16.
  const labels = Uint8Array.from({ length: 100 }, (_, i) => (i < 53 ? 0 : i < 84 ? 1 : 2));
  const folds = stratifiedKFold(labels, 5, 7);
  assertPartition(folds, 100);
  const sizes = folds.map((f) => f.length);
  assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `sizes ${sizes.join(',')}`);
  for (const f of folds) {
    const h = classHistogram(
      Uint8Array.from(f, (i) => labels[i] as number),
      3,
    );
    assert.ok(
      Math.abs((h[0] as number) - 53 / 5) <= 1 && Math.abs((h[1] as number) - 31 / 5) <= 1 && Math.abs((h[2] as number) - 16 / 5) <= 1,
      `class counts ${h.join(',')}`,
    );
  }
  assert.deepEqual(stratifiedKFold(labels, 5, 7), folds, 'same seed, same folds');
  assert.notDeepEqual(stratifiedKFold(labels, 5, 8), folds, 'another seed, other folds');
});

test("the seed's scheme cuts a seeded permutation into equal folds", () => {
  const folds = randomEqualFolds(60, 5, 3);
  assertPartition(folds, 60);
  assert.deepEqual(
    folds.map((f) => f.length),
    [12, 12, 12, 12, 12],
  );
  assert.deepEqual(randomEqualFolds(60, 5, 3), folds);
  assert.deepEqual(
    randomEqualFolds(7, 3, 1).map((f) => f.length),
    [3, 2, 2],
  );
});

test('impossible fold counts are refused', () => {
  assert.throws(() => stratifiedKFold(new Uint8Array(10), 1, 0), ConfigError);
  assert.throws(
    () => stratifiedKFold(new Uint8Array(3), 4, 0),
    (e: unknown) => e instanceof ConfigError && /4 folds need at least 4 images/.test(e.message),
  );
  assert.throws(() => randomEqualFolds(10, 2.5, 0), ConfigError);
  // The bounds are foldCountSchema's, the same the coordinator checks a run spec with.
  assert.throws(
    () => randomEqualFolds(1000, 101, 0),
    (e: unknown) => e instanceof ConfigError && e.field === 'folds' && /must be <= 100, got 101/.test(e.message),
  );
  assert.equal(randomEqualFolds(1000, 100, 0).length, 100);
});

test('a stratified subset keeps class proportions', () => {
  const labels = Uint8Array.from({ length: 1000 }, (_, i) => i % 10);
  const sub = stratifiedSubset(labels, 200, 1);
  assert.equal(sub.length, 200);
  assert.equal(new Set(sub).size, 200);
  assert.deepEqual(
    classHistogram(
      Uint8Array.from(sub, (i) => labels[i] as number),
      10,
    ),
    new Array(10).fill(20),
  );
});

test("a stratified subset with leaveOnePerClass never takes a class's last image", () => {
  // Class 0 has one image; the round-robin of the leftover picks gave it to the subset.
  const labels = Uint8Array.from([0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
  assert.ok([...stratifiedSubset(labels, 2, 1)].includes(0), 'without the option the only image of class 0 is taken');
  const sub = stratifiedSubset(labels, 2, 1, { leaveOnePerClass: true });
  assert.equal(sub.length, 2);
  assert.ok(!sub.includes(0));
  assert.equal(stratifiedSubset(labels, 8, 1, { leaveOnePerClass: true }).length, 8);
  assert.throws(() => stratifiedSubset(labels, 9, 1, { leaveOnePerClass: true }), RangeError);
});
