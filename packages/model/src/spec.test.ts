import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '@cvc/core';
import { foldCountSchema } from '@cvc/data';
import { resolveTrainConfig, runSpecSchema, trainConfigSchema } from './index.js';

test('zod refuses NaN and +-Infinity in every numeric train-config field (no .finite() needed)', () => {
  for (const field of ['epochs', 'batchSize', 'learningRate', 'beta1', 'beta2', 'epsilon', 'seed', 'evalBatchSize']) {
    for (const v of [NaN, Infinity, -Infinity]) {
      const r = trainConfigSchema.safeParse({ model: 'seed-mnist', [field]: v });
      assert.equal(r.success, false, `${field} = ${v} is refused`);
      assert.deepEqual(r.error?.issues[0]?.path, [field]);
    }
  }
  for (const v of [NaN, Infinity]) assert.equal(foldCountSchema.safeParse(v).success, false);
});

test('the run-spec schema is the trainer schema: same defaults, same bounds, plus the fold count', () => {
  const d = runSpecSchema.parse({ model: 'seed-mnist' });
  const t = resolveTrainConfig({ model: 'seed-mnist' });
  assert.deepEqual(d, {
    model: 'seed-mnist',
    epochs: t.epochs,
    batchSize: t.batchSize,
    learningRate: t.learningRate,
    seed: t.seed,
    folds: 5,
  });
  // Up-sampling is the model config's (the preset's default when unset).
  assert.equal(t.upsample, 'nearest');
  assert.equal(t.modelConfig.upsample, 'nearest');
  assert.equal(runSpecSchema.parse({ model: 'seed-mnist', seed: 0 }).seed, 0);
  // A bound changed in the trainer's schema is a bound of the run spec.
  for (const bad of [
    { epochs: 0 },
    { epochs: 100_001 },
    { batchSize: 65_537 },
    { learningRate: 0 },
    { learningRate: 1.01 },
    { seed: -1 },
    { folds: 1 },
    { folds: 101 },
  ]) {
    assert.equal(runSpecSchema.safeParse({ model: 'seed-mnist', ...bad }).success, false, JSON.stringify(bad));
    const trainerToo = !('folds' in bad);
    if (trainerToo) assert.throws(() => resolveTrainConfig({ model: 'seed-mnist', ...bad }), ConfigError, JSON.stringify(bad));
  }
  // Only the run spec's seed is limited to int32 (the wire type).
  assert.equal(runSpecSchema.safeParse({ model: 'seed-mnist', seed: 2 ** 31 }).success, false);
  assert.equal(resolveTrainConfig({ model: 'seed-mnist', seed: 2 ** 31 }).seed, 2 ** 31);
});
