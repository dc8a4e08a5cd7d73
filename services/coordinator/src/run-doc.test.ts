import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RunSpec } from '@cvc/proto';
import { resolveTrainConfig } from '@cvc/model';
import { CoordinatorError } from './errors.js';
import { resolveSpec } from './run-doc.js';

const base: RunSpec = { name: '', dataset: 'fashion-mnist', model: 'seed-mnist', upsample: '', datasetVersion: '', modelConfigJson: '' };

/** Asserts that `spec` is refused as INVALID_ARGUMENT whose message starts with `spec.FIELD:`. */
function refused(spec: Partial<RunSpec>, field: string, detail?: RegExp): void {
  assert.throws(
    () => resolveSpec({ ...base, ...spec }),
    (e: unknown) => {
      assert.ok(e instanceof CoordinatorError, `a CoordinatorError for ${JSON.stringify(spec)}`);
      assert.equal(e.outcome, 'INVALID_ARGUMENT');
      assert.ok(e.message.startsWith(`spec.${field}: `), `'${e.message}' names spec.${field}`);
      if (detail) assert.match(e.message, detail);
      return true;
    },
  );
}

test('unset numeric fields take the trainer schema defaults, and the result has every field set', () => {
  const r = resolveSpec(base);
  assert.deepEqual(
    { folds: r.folds, epochs: r.epochs, batchSize: r.batchSize, learningRate: r.learningRate, seed: r.seed, upsample: r.upsample, model: r.model },
    { folds: 5, epochs: 100, batchSize: 32, learningRate: 1e-4, seed: 42, upsample: 'nearest', model: 'seed-mnist' },
  );
  // The same defaults as the trainer's own config: one definition.
  const t = resolveTrainConfig({ model: 'seed-mnist' });
  assert.deepEqual([r.epochs, r.batchSize, r.learningRate, r.seed, r.upsample], [t.epochs, t.batchSize, t.learningRate, t.seed, t.upsample]);
  assert.equal(r.dataset, 'fashion-mnist');
});

test('set fields are kept as given: a seed of 0 stays 0, other values are not replaced by defaults', () => {
  const r = resolveSpec({ ...base, seed: 0, folds: 2, epochs: 1, batchSize: 1, learningRate: 1, upsample: 'bilinear', model: 'seed-cifar' });
  assert.equal(r.seed, 0);
  assert.deepEqual([r.folds, r.epochs, r.batchSize, r.learningRate, r.upsample, r.model], [2, 1, 1, 1, 'bilinear', 'seed-cifar']);
  assert.equal(resolveSpec({ ...base, seed: 2 ** 31 - 1 }).seed, 2 ** 31 - 1);
});

test('NaN and +-Infinity are refused for every numeric field, naming the proto field', () => {
  const fields: [keyof RunSpec, string][] = [
    ['folds', 'folds'],
    ['epochs', 'epochs'],
    ['batchSize', 'batch_size'],
    ['learningRate', 'learning_rate'],
    ['seed', 'seed'],
  ];
  for (const [key, proto] of fields) {
    refused({ [key]: NaN }, proto, /NaN/);
    refused({ [key]: Infinity }, proto, /Infinity/);
    refused({ [key]: -Infinity }, proto);
  }
});

test('negative numbers are refused for every numeric field', () => {
  refused({ folds: -1 }, 'folds', /got -1/);
  refused({ epochs: -1 }, 'epochs', /got -1/);
  refused({ batchSize: -1 }, 'batch_size', /got -1/);
  refused({ learningRate: -1e-4 }, 'learning_rate', /got -0.0001/);
  refused({ seed: -1 }, 'seed', /got -1/);
});

test('0 is refused where 0 is invalid (folds, epochs, batch size, learning rate), never defaulted', () => {
  refused({ folds: 0 }, 'folds', /got 0/);
  refused({ epochs: 0 }, 'epochs', /got 0/);
  refused({ batchSize: 0 }, 'batch_size', /got 0/);
  refused({ learningRate: 0 }, 'learning_rate', /got 0/);
});

test('out-of-range and fractional values are refused', () => {
  refused({ folds: 1 }, 'folds');
  refused({ folds: 101 }, 'folds', /must be <= 100, got 101/);
  refused({ epochs: 100_001 }, 'epochs');
  refused({ epochs: 1.5 }, 'epochs', /int/);
  refused({ batchSize: 65_537 }, 'batch_size');
  refused({ learningRate: 1.5 }, 'learning_rate');
  refused({ seed: 2 ** 31 }, 'seed', /int32/);
  refused({ seed: 0.5 }, 'seed');
});

test('unknown model or upsample, and bad names, are refused naming the field', () => {
  refused({ model: 'resnet' }, 'model', /'resnet'/);
  refused({ model: '' }, 'model');
  refused({ upsample: 'cubic' }, 'upsample', /'cubic'/);
  refused({ dataset: '' }, 'dataset');
  refused({ dataset: '../etc' }, 'dataset');
  refused({ name: 'a b' }, 'name');
  refused({ datasetVersion: 'x/y' }, 'dataset_version');
  // A config's problems are all listed, each naming its field (at most 5, then a count).
  const blocks = Array.from({ length: 7 }, () => ({ filters: 0 }));
  refused(
    { model: 'custom', modelConfigJson: JSON.stringify({ encoder: blocks, codeSize: 0 }) },
    'model_config.encoder[0].filters',
    /^spec\.model_config\.encoder\[0\]\.filters: must be >= 1; spec\.model_config\.encoder\[1\]\.filters: must be >= 1; .*encoder\[4\]\.filters: must be >= 1; and 3 more problems$/,
  );
  assert.throws(
    () => resolveSpec(undefined),
    (e: unknown) => e instanceof CoordinatorError && e.outcome === 'INVALID_ARGUMENT' && /spec is required/.test(e.message),
  );
});
