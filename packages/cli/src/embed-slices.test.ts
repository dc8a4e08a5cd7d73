import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancelledError } from '@cvc/core';
import { randomImageSet } from '@cvc/data/testing';
import { embedImages, loadEncoder } from '@cvc/model';
import { embedAbortable } from './embed-slices.js';
import { writeTinyEncoder } from './encoder-fixture.js';

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
