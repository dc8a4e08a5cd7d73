import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancelledError } from '@cvc/core';
import { randomImageSet, writeIdxDataset } from '@cvc/data/testing';
import { embedImages, loadEncoder } from '@cvc/model';
import { embedAbortable } from './embed-slices.js';
import { writeTinyEncoder } from './encoder-fixture.js';
import { main } from './index.js';
import { captureEnv } from './testing.js';

test('embedding a large split stops between slices on Ctrl-C (the abort signal) and gives the same codes as one call', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-embed-slices-'));
  try {
    await writeTinyEncoder(dir, [8, 8, 1]);
    const encoder = await loadEncoder(dir);
    const set = randomImageSet(50, 8, 8, 1, 7, 3);
    const whole = embedImages(encoder, set, 16);
    const sliced = await embedAbortable(encoder, set, 16, undefined, undefined, 10);
    assert.equal(sliced.n, 50);
    assert.deepEqual(sliced.data, whole.data);
    // Ctrl-C lands while the first slice is embedded: the next slice never starts.
    const ac = new AbortController();
    const seen: number[] = [];
    await assert.rejects(
      embedAbortable(
        encoder,
        set,
        16,
        ac.signal,
        (done) => {
          seen.push(done);
          ac.abort(new CancelledError('cvc embed'));
        },
        10,
      ),
      (e: unknown) => e instanceof CancelledError,
    );
    assert.deepEqual(seen, [10]);
    encoder.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('embed of a split larger than a slice shows its progress (a line per slice without a terminal)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-embed-progress-'));
  try {
    await writeTinyEncoder(join(dir, 'enc'), [8, 8, 1]);
    await writeIdxDataset(join(dir, 'data'), randomImageSet(4100, 8, 8, 1, 3, 3), randomImageSet(10, 8, 8, 1, 4, 3));
    const env = captureEnv(join(dir, 'cache'));
    const args = ['embed', '--encoder', join(dir, 'enc'), '--dataset', join(dir, 'data'), '--split', 'train', '--out', join(dir, 'codes.npy')];
    assert.equal(await main(args, env, { handleSignals: false }), 0, env.err());
    assert.match(env.err(), /embedding .*data train 4096\/4100 images\n/);
    assert.match(env.err(), /embedding .*data train 4100\/4100 images\n/);
    assert.match(env.out(), /4100 codes of size 3 written/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
