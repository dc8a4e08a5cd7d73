import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveTrainConfig } from '@cvc/model';
import { localRunDifferences, sameLocalRun, type LocalRunSpec } from './cv-local.js';

const spec = (config = resolveTrainConfig({ model: 'seed-mnist', epochs: 2, seed: 7 })): LocalRunSpec => ({
  model: 'seed-mnist',
  dataset: 'fashion-mnist',
  datasetVersion: 'v1',
  folds: 3,
  scheme: 'stratified',
  config,
});

/** A train config as written before model configs existed. */
function withoutModelConfig<T extends { modelConfig?: unknown }>(c: T): Omit<T, 'modelConfig'> {
  const copy: Partial<T> = { ...c };
  delete copy.modelConfig;
  return copy as Omit<T, 'modelConfig'>;
}

test('a run.json written before model configs existed (no modelConfig, loss/upsample at the top level) resumes the same settings', () => {
  const next = spec();
  // What an older cvc wrote: the train config without modelConfig, its loss and upsample at the top level, keys in another order.
  const { loss, upsample, ...rest } = next.config;
  const old = { ...next, config: { upsample, loss, ...withoutModelConfig(rest) } };
  assert.equal(sameLocalRun(JSON.parse(JSON.stringify(old)), next), true);
  assert.equal(sameLocalRun(JSON.parse(JSON.stringify(next)), next), true);
});

test('a run.json with different settings does not match', () => {
  const next = spec();
  const rest = withoutModelConfig(next.config);
  assert.equal(sameLocalRun({ ...next, config: { ...rest, loss: 'bce' } }, next), false);
  assert.equal(sameLocalRun({ ...next, folds: 5 }, next), false);
  assert.equal(sameLocalRun({ ...next, config: { ...rest, epochs: 3 } }, next), false);
  assert.equal(sameLocalRun({ ...next, config: { model: 'nonsense' } }, next), false);
  assert.equal(sameLocalRun('garbage', next), false);
});

test('the refusal names each setting that differs, with both values', () => {
  const next = spec();
  const rest = withoutModelConfig(next.config);
  assert.deepEqual(localRunDifferences({ ...next, folds: 5, config: { ...rest, epochs: 3 } }, next), [
    'folds: 5 there, 3 now',
    'config.epochs: 3 there, 2 now',
  ]);
  assert.deepEqual(localRunDifferences({ ...next, datasetVersion: 'v0' }, next, ['datasetVersion']), []);
  assert.deepEqual(localRunDifferences({ ...next, datasetVersion: 'v0' }, next), ['datasetVersion: v0 there, v1 now']);
});
