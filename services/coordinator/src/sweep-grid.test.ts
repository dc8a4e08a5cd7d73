import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RunSpec, type SweepSpec } from '@cvc/proto';
import { CoordinatorError } from './errors.js';
import { defaultRungs, planSweep, trialSpec } from './sweep-grid.js';

const base = RunSpec.fromPartial({ dataset: 'fashion-mnist', model: 'seed-mnist', folds: 2, epochs: 9 });
const sweep = (over: Partial<SweepSpec> = {}): SweepSpec => ({ name: '', base, grid: [], earlyStop: '', rungs: [], ...over });
const invalid = (re: RegExp) => (e: unknown) => e instanceof CoordinatorError && e.outcome === 'INVALID_ARGUMENT' && re.test(e.message);

test('a grid expands to its cartesian product (last parameter fastest) with ASHA defaults', () => {
  const p = planSweep(
    sweep({
      grid: [
        { name: 'learning-rate', values: ['1e-3', '3e-4'] },
        { name: 'batch-size', values: ['16', '32', '64'] },
      ],
    }),
  );
  assert.equal(p.trials.length, 6);
  assert.deepEqual(p.trials[1]?.params, { 'learning-rate': '1e-3', 'batch-size': '32' });
  assert.deepEqual(p.trials[5]?.params, { 'learning-rate': '3e-4', 'batch-size': '64' });
  assert.equal(p.trials[4]?.spec.learningRate, 3e-4);
  assert.equal(p.trials[4]?.spec.batchSize, 32);
  assert.equal(p.earlyStop, 'asha');
  assert.equal(p.reductionFactor, 3);
  assert.deepEqual(p.rungs, [1, 3], 'eta^k below 9 epochs');
  assert.equal(p.maxParallelRuns, 6);
  assert.deepEqual(defaultRungs(4, 3), [1, 3]);
  assert.deepEqual(defaultRungs(100, 3), [1, 3, 9, 27, 81]);
  assert.deepEqual(defaultRungs(1, 3), []);
});

test('a model-config field produces model_config_json (a seed preset becomes custom)', () => {
  const s = trialSpec(base, { 'code-size': '32', dense: 'none', kernel: '5' });
  assert.equal(s.model, 'custom');
  const cfg = JSON.parse(s.modelConfigJson) as { codeSize: number; dense: number[]; encoder: { kernel: number }[]; input: unknown };
  assert.equal(cfg.codeSize, 32);
  assert.deepEqual(cfg.dense, []);
  assert.deepEqual(
    cfg.encoder.map((b) => b.kernel),
    [5, 5, 5],
  );
  assert.deepEqual(cfg.input, { height: 28, width: 28, channels: 1 });
  const cae = trialSpec({ ...base, model: 'cae' }, { filters: '8x16' });
  assert.equal(cae.model, 'cae');
  assert.deepEqual(
    (JSON.parse(cae.modelConfigJson) as { encoder: { filters: number; pool: number }[] }).encoder.map((b) => [b.filters, b.pool]),
    [
      [8, 2],
      [16, 1],
    ],
  );
});

test('random N samples without replacement, the same for the same seed', () => {
  const grid = [
    { name: 'learning-rate', values: ['1e-2', '1e-3', '1e-4', '1e-5'] },
    { name: 'seed', values: ['1', '2', '3', '4', '5'] },
  ];
  const a = planSweep(sweep({ grid, random: 7, randomSeed: 11 }));
  const b = planSweep(sweep({ grid, random: 7, randomSeed: 11 }));
  const key = (p: typeof a): string[] => p.trials.map((t) => JSON.stringify(t.params));
  assert.equal(new Set(key(a)).size, 7, 'no configuration twice');
  assert.deepEqual(key(a), key(b));
  assert.notDeepEqual(key(a), key(planSweep(sweep({ grid, random: 7, randomSeed: 12 }))));
  assert.throws(() => planSweep(sweep({ grid, random: 21 })), invalid(/random: 21 configurations asked for, the grid has only 20/));
});

test('unknown names, unparsable or out-of-range values, and bad sweep options are INVALID_ARGUMENT naming them', () => {
  assert.throws(() => planSweep(sweep({ grid: [{ name: 'momentum', values: ['0.9'] }] })), invalid(/unknown parameter 'momentum'/));
  assert.throws(() => planSweep(sweep({ grid: [{ name: 'learning-rate', values: ['1e-3', 'fast'] }] })), invalid(/grid learning-rate: 'fast' is not a number/));
  assert.throws(() => planSweep(sweep({ grid: [{ name: 'learning-rate', values: ['2'] }] })), invalid(/grid learning-rate=2: spec\.learning_rate: .*got 2/));
  assert.throws(() => planSweep(sweep({ grid: [{ name: 'batch-size', values: ['1.5'] }] })), invalid(/grid batch-size: '1.5' is not an integer/));
  assert.throws(() => planSweep(sweep({ grid: [{ name: 'upsample', values: ['cubic'] }] })), invalid(/grid upsample=cubic: spec\.upsample/));
  assert.throws(() => planSweep(sweep({ grid: [{ name: 'code-size', values: ['0'] }] })), invalid(/grid code-size=0: spec\.model_config\.codeSize/));
  assert.throws(() => planSweep(sweep({ grid: [{ name: 'init', values: ['zeros'] }] })), invalid(/grid init=zeros: spec\.model_config\.init/));
  const lr = [{ name: 'learning-rate', values: ['1e-3'] }];
  assert.throws(() => planSweep(sweep({ grid: lr, earlyStop: 'hyperband' })), invalid(/early_stop: 'hyperband'/));
  assert.throws(() => planSweep(sweep({ grid: lr, reductionFactor: 1 })), invalid(/reduction_factor: must be a number > 1/));
  assert.throws(() => planSweep(sweep({ grid: lr, rungs: [3, 1] })), invalid(/rungs: must increase/));
  assert.throws(() => planSweep(sweep({ grid: lr, rungs: [9] })), invalid(/rungs: 9 is not below the epoch count 9/));
  assert.throws(() => planSweep(sweep({ grid: lr, maxParallelRuns: 0 })), invalid(/max_parallel_runs/));
  assert.throws(() => planSweep(sweep({ grid: [] })), invalid(/at least one parameter/));
  assert.throws(() => planSweep(sweep({ grid: [{ name: 'seed', values: ['1', '1'] }] })), invalid(/given twice/));
});
