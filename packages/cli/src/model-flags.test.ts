import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from './errors.js';
import { modelFromFlags } from './model-flags.js';
import { runSpecFromFlags } from './run-spec-flags.js';
import { COMMAND_HELP } from './help.js';

const refused = async (values: Record<string, unknown>, re: RegExp): Promise<void> => {
  await assert.rejects(
    () => modelFromFlags(values, 'run submit'),
    (e: unknown) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.match(e.message, re);
      return true;
    },
  );
};

test('--model cae flags build the cae config; bad values name the flag or the field', async () => {
  const c = await modelFromFlags(
    { model: 'cae', filters: '32,64,128', 'code-size': '32', kernel: '5', init: 'he', loss: 'bce', 'output-activation': 'sigmoid' },
    'x',
  );
  assert.equal(c.model, 'cae');
  assert.deepEqual(
    c.config?.encoder?.map((b) => [b.filters, b.kernel, b.pool]),
    [
      [32, 5, 2],
      [64, 5, 2],
      [128, 5, 1],
    ],
  );
  assert.equal(c.config?.codeSize, 32);
  assert.equal(c.config?.init, 'he');
  const spec = await runSpecFromFlags({ dataset: 'd', model: 'cae', filters: '8,8', upsample: 'bilinear' });
  assert.equal(spec.upsample, '');
  assert.equal((JSON.parse(spec.modelConfigJson) as { upsample: string }).upsample, 'bilinear');
  await refused({ model: 'cae', filters: '32,0' }, /--filters must be >= 1, got '0'/);
  await refused({ model: 'cae', filters: '32,,8' }, /--filters must be an integer/);
  await refused({ model: 'cae', loss: 'hinge' }, /--loss must be one of mse, mse-cosine, bce/);
  await refused({ model: 'seed-mnist', filters: '8' }, /--filters applies to --model cae, not seed-mnist/);
  await refused({ model: 'custom' }, /--model custom needs --model-config FILE/);
  await refused({}, /needs --model/);
});

test('--model-config FILE is checked with the schema; errors name the file and the field', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-mc-'));
  try {
    const good = join(dir, 'cae.json');
    await writeFile(good, JSON.stringify({ encoder: [{ filters: 16, stride: 2 }, { filters: 32 }], codeSize: 8, upsample: 'bilinear' }));
    const c = await modelFromFlags({ 'model-config': good }, 'x');
    assert.equal(c.model, 'custom');
    assert.equal(c.config?.codeSize, 8);
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ encoder: [{ filters: 16 }, { filters: 16 }, { filters: 0 }], codeSize: 8 }));
    await refused({ 'model-config': bad }, new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: encoder\\[2\\]\\.filters: must be >= 1$`));
    // Every problem at once, each naming its field: an unknown key and a bad value.
    const two = join(dir, 'two.json');
    await writeFile(two, JSON.stringify({ encoder: [{ filters: 16, strides: 2 }], codeSize: 8, outputActivation: 'softmax' }));
    await refused({ 'model-config': two }, /two\.json: encoder\[0\]: Unrecognized key: "strides"; outputActivation: must be one of relu, sigmoid, linear$/);
    const notJson = join(dir, 'x.json');
    await writeFile(notJson, '{ encoder');
    await refused({ 'model-config': notJson }, /x\.json: cannot read it as JSON/);
    await refused({ 'model-config': join(dir, 'missing.json') }, /missing\.json: cannot be read \(no such file\)$/);
    await refused({ 'model-config': dir }, /: cannot be read \(a directory\)$/);
    await refused({ 'model-config': good, model: 'seed-mnist' }, /--model-config takes no --model/);
    await refused({ 'model-config': good, upsample: 'nearest' }, /upsample "bilinear" conflicts with --upsample nearest/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an unknown --model lists the names the help lists, and custom only with its --model-config', async () => {
  const help = COMMAND_HELP['run submit']?.flags.find((f) => f.flag === '--model NAME')?.text ?? '';
  let listed: string[] = [];
  await assert.rejects(
    () => modelFromFlags({ model: 'nope' }, 'run submit'),
    (e: unknown) => {
      const m = /^--model must be one of (.+), got 'nope'$/.exec((e as Error).message);
      assert.ok(m, String(e));
      listed = (m[1] ?? '').split(', ');
      return true;
    },
  );
  assert.deepEqual(listed, ['seed-mnist', 'seed-cifar', 'cae']);
  for (const name of listed) assert.match(help, new RegExp(`(^|[ ,])${name} \\(`), `help describes --model ${name}`);
  await refused({ model: 'custom' }, /^run submit: --model custom needs --model-config FILE$/);
});
