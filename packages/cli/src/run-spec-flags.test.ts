import { test } from 'node:test';
import assert from 'node:assert/strict';
import { positiveInt, floatOpt, intOpt } from './args.js';
import { UsageError } from './errors.js';
import { runSpecFromFlags, trainingFlags } from './run-spec-flags.js';
import { main } from './index.js';
import { captureEnv } from './testing.js';

const submit = { dataset: 'fashion-mnist', model: 'seed-mnist' };

/** Asserts that parsing throws a UsageError whose message starts with `--FLAG` and matches `detail`. */
function usage(fn: () => unknown, flag: string, detail: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UsageError, String(e));
    assert.ok(e.message.startsWith(`--${flag} `), `'${e.message}' names --${flag}`);
    assert.match(e.message, detail);
    return true;
  });
}

test('numeric flags parse strictly: text, fractions, hex, empty, NaN and Infinity are refused naming the flag', () => {
  usage(() => trainingFlags({ 'learning-rate': 'abc' }), 'learning-rate', /must be a number, got 'abc'/);
  usage(() => trainingFlags({ 'learning-rate': 'NaN' }), 'learning-rate', /got 'NaN'/);
  usage(() => trainingFlags({ 'learning-rate': 'Infinity' }), 'learning-rate', /got 'Infinity'/);
  usage(() => trainingFlags({ epochs: '1.5' }), 'epochs', /must be an integer, got '1.5'/);
  usage(() => trainingFlags({ epochs: '0x10' }), 'epochs', /must be an integer/);
  usage(() => trainingFlags({ epochs: '' }), 'epochs', /must be an integer, got ''/);
  usage(() => trainingFlags({ seed: 'x' }), 'seed', /must be an integer, got 'x'/);
  usage(() => trainingFlags({ 'batch-size': '1e3' }), 'batch-size', /must be an integer/);
});

test('numeric flags are checked with the run-spec schema: bounds and 0 where 0 is invalid', () => {
  usage(() => trainingFlags({ epochs: '-3' }), 'epochs', /must be >= 1, got '-3'/);
  usage(() => trainingFlags({ epochs: '0' }), 'epochs', /must be >= 1, got '0'/);
  usage(() => trainingFlags({ folds: '1' }), 'folds', /must be >= 2/);
  usage(() => trainingFlags({ folds: '101' }), 'folds', /must be <= 100/);
  usage(() => trainingFlags({ 'batch-size': '0' }), 'batch-size', /must be >= 1/);
  usage(() => trainingFlags({ 'learning-rate': '0' }), 'learning-rate', /must be > 0, got '0'/);
  usage(() => trainingFlags({ 'learning-rate': '-1e-4' }), 'learning-rate', /must be > 0/);
  usage(() => trainingFlags({ seed: '-1' }), 'seed', /must be >= 0/);
  usage(() => trainingFlags({ seed: '2147483648' }), 'seed', /int32/);
  assert.deepEqual(trainingFlags({ folds: '2', epochs: '+3', 'batch-size': ' 8 ', 'learning-rate': '1e-3', seed: '0' }), {
    folds: 2,
    epochs: 3,
    batchSize: 8,
    learningRate: 1e-3,
    seed: 0,
  });
  assert.equal(floatOpt({ lr: '.5' }, 'lr'), 0.5);
  assert.equal(intOpt({ n: '7' }, 'n', 1, positiveInt), 7);
  assert.equal(intOpt({}, 'n', 1, positiveInt), 1);
  usage(() => intOpt({ limit: '0' }, 'limit', undefined, positiveInt), 'limit', /must be >= 1/);
  usage(() => intOpt({ workers: '-2' }, 'workers', 4), 'workers', /must be >= 0/);
});

test('run submit: unset flags leave the spec field unset, set ones (0 included) are sent as given', async () => {
  const bare = await runSpecFromFlags(submit);
  for (const k of ['folds', 'epochs', 'batchSize', 'learningRate', 'seed'] as const) assert.equal(k in bare, false, `${k} is unset`);
  assert.deepEqual(bare, { name: '', dataset: 'fashion-mnist', model: 'seed-mnist', modelConfigJson: '', upsample: '', datasetVersion: '' });
  const all = await runSpecFromFlags({
    ...submit,
    seed: '0',
    folds: '3',
    epochs: '2',
    'batch-size': '16',
    'learning-rate': '0.001',
    upsample: 'bilinear',
    name: 'n1',
  });
  assert.deepEqual(all, {
    name: 'n1',
    dataset: 'fashion-mnist',
    model: 'seed-mnist',
    modelConfigJson: '',
    folds: 3,
    epochs: 2,
    batchSize: 16,
    learningRate: 0.001,
    seed: 0,
    upsample: 'bilinear',
    datasetVersion: '',
  });
  await assert.rejects(() => runSpecFromFlags({ model: 'seed-mnist' }), /needs --dataset/);
});

test('bad numeric flags exit 2 with a message naming the flag, before any cluster is looked for', async () => {
  const cases: [string[], RegExp][] = [
    [['run', 'submit', '--dataset', 'd', '--model', 'seed-mnist', '--learning-rate', 'abc'], /--learning-rate must be a number, got 'abc'/],
    [['run', 'submit', '--dataset', 'd', '--model', 'seed-mnist', '--epochs', '-3'], /--epochs must be >= 1, got '-3'/],
    [['run', 'submit', '--dataset', 'd', '--model', 'seed-mnist', '--epochs', '1.5'], /--epochs must be an integer, got '1.5'/],
    [['run', 'submit', '--dataset', 'd', '--model', 'seed-mnist', '--seed', 'x'], /--seed must be an integer, got 'x'/],
    [['cv', '--local', '--dataset', 'x', '--model', 'seed-mnist', '--folds', '0'], /--folds must be >= 2, got '0'/],
    [['cv', '--local', '--dataset', 'x', '--model', 'seed-mnist', '--threads', '0'], /--threads must be >= 1/],
    [['dataset', 'import', 'mnist', '--limit', '-5'], /--limit must be >= 1, got '-5'/],
    [['dataset', 'import', 'mnist', '--folds', 'five'], /--folds must be an integer, got 'five'/],
  ];
  for (const [argv, msg] of cases) {
    const env = captureEnv('/nonexistent');
    assert.equal(await main(argv, env), 2, argv.join(' '));
    assert.match(env.err(), msg);
    assert.doesNotMatch(env.err(), /no cluster found/);
  }
});

test('run submit / sweep submit --dataset PATH: the cluster takes a dataset name; the message says how to import a folder, or train an --out import locally', async () => {
  for (const argv of [
    ['run', 'submit', '--dataset', './photos', '--model', 'cae'],
    ['sweep', 'submit', '--dataset', 'imports/photos-ds', '--model', 'cae', '--grid', 'code-size=4,8'],
  ]) {
    const env = captureEnv('/nonexistent-cache');
    assert.equal(await main(argv, env), 2, env.err());
    assert.match(
      env.err(),
      /--dataset takes the name of a dataset imported into the cluster, not a path \(.*photos.*\): import a folder of images with cvc dataset import FOLDER --name NAME/,
    );
    assert.match(env.err(), /cvc cv --local --dataset DIR/);
  }
});
