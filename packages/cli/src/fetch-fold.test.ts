import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FoldStatus } from '@cvc/proto';
import { chooseFold } from './fetch-fold.js';

const folds = [0.3, 0.1, 0.2].map((loss, fold) => ({ fold, val: { loss } }) as unknown as FoldStatus);

/** A download that counts its calls per fold and answers bytes that name the fold. */
function counting(): { download: (fold: number) => Promise<Uint8Array>; calls: number[] } {
  const calls: number[] = [];
  return { calls, download: (fold) => (calls.push(fold), Promise.resolve(Uint8Array.of(fold))) };
}

test("encoder fetch --by cluster-acc downloads each fold once and keeps the best one's bytes", async () => {
  const d = counting();
  const acc = [0.5, 0.7, 0.9];
  const got = await chooseFold(
    folds,
    { by: 'cluster-acc', accuracy: (bytes, fold) => (assert.equal(bytes[0], fold), Promise.resolve(acc[fold] as number)) },
    d.download,
  );
  assert.deepEqual(d.calls, [0, 1, 2], 'one download per fold, none again for the chosen one');
  assert.equal(got.fold, 2);
  assert.deepEqual(Array.from(got.checkpoint), [2]);
  assert.deepEqual(got.selection, { fold0: 0.5, fold1: 0.7, fold2: 0.9 });
});

test('--by val-loss and --fold K download only the chosen fold', async () => {
  const v = counting();
  assert.equal((await chooseFold(folds, { by: 'val-loss' }, v.download)).fold, 1);
  assert.deepEqual(v.calls, [1]);
  const k = counting();
  assert.deepEqual(Array.from((await chooseFold(folds, { by: 'fold', fold: 0 }, k.download)).checkpoint), [0]);
  assert.deepEqual(k.calls, [0]);
});
