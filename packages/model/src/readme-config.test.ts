import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { fitModelConfig, type ModelConfigInput } from './model-config.js';

/** The repository's README.md (this file runs from packages/model/dist). */
const README = fileURLToPath(new URL('../../../README.md', import.meta.url));

/** The JSON of the first ```json block after `heading` in the README. */
async function readmeJson(heading: string): Promise<unknown> {
  const text = await readFile(README, 'utf8');
  const at = text.indexOf(heading);
  assert.ok(at >= 0, `README has "${heading}"`);
  const block = /```json\n([\s\S]*?)```/.exec(text.slice(at));
  assert.ok(block?.[1], `a json block follows "${heading}"`);
  return JSON.parse(block[1]) as unknown;
}

test("the README's example cae.json fits the images its own commands give it: fashion-mnist (28x28x1), 32x32 and 64x64 RGB", async () => {
  const config = (await readmeJson('An example `cae.json`')) as ModelConfigInput;
  for (const shape of [
    { height: 28, width: 28, channels: 1 },
    { height: 32, width: 32, channels: 3 },
    { height: 64, width: 64, channels: 3 },
  ]) {
    const fit = fitModelConfig(config, shape);
    assert.ok(fit.ok, `${shape.height}x${shape.width}x${shape.channels}: ${fit.ok ? '' : `${fit.field}: ${fit.message}`}`);
  }
});
