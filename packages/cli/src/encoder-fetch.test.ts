import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DatasetManifest } from '@cvc/data';
import { FoldState, type Run } from '@cvc/proto';
import { checkFetchableFold, clusterAccClasses } from './encoder-cmd.js';
import { UsageError } from './errors.js';

const manifest = (m: Partial<DatasetManifest>): DatasetManifest => ({ classNames: [], shards: [], ...m }) as unknown as DatasetManifest;

test('encoder fetch --by cluster-acc takes k from the manifest class count, and refuses an unlabeled image folder', () => {
  // k is the class count even when the test split lacks the last classes.
  assert.equal(clusterAccClasses(manifest({ classNames: ['a', 'b', 'c', 'd'] }), 'photos'), 4);
  const refused = (m: DatasetManifest): boolean => {
    assert.throws(
      () => clusterAccClasses(m, 'dataset photos version v1'),
      (err: unknown) =>
        err instanceof UsageError && /--by cluster-acc needs labels \(class folders\)/.test(err.message) && /use --by val-loss/.test(err.message),
    );
    return true;
  };
  refused(manifest({ classNames: ['unlabeled'], imageFolder: { labeled: false } as DatasetManifest['imageFolder'] }));
  refused(manifest({ classNames: ['x', 'y'], imageFolder: { labeled: false } as DatasetManifest['imageFolder'] }));
  // Fewer test images than classes: k-means cannot make k clusters; said in terms of the test split.
  const shard = (split: string, count: number) => ({ name: `${split}.cvcs`, split, count }) as unknown as DatasetManifest['shards'][number];
  assert.throws(
    () => clusterAccClasses(manifest({ classNames: ['a', 'b', 'c', 'd'], shards: [shard('fold', 40), shard('test', 3)] }), 'dataset photos version v1'),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message === '--by cluster-acc clusters the test split into its 4 classes, but dataset photos version v1 has 3 test images: use --by val-loss',
  );
  assert.equal(clusterAccClasses(manifest({ classNames: ['a', 'b'], shards: [shard('test', 2)] }), 'x'), 2);
});

test('encoder fetch --fold K names a fold the run does not have apart from one that has not finished', () => {
  const fold = (n: number, state: FoldState): Run['folds'][number] =>
    ({ fold: n, state, bestCheckpoint: state === FoldState.FOLD_STATE_SUCCEEDED ? 'k' : '' }) as Run['folds'][number];
  const run = { id: 'r-1', folds: [fold(0, FoldState.FOLD_STATE_SUCCEEDED), fold(1, FoldState.FOLD_STATE_RUNNING)] };
  assert.throws(
    () => checkFetchableFold(run, 5),
    (e: unknown) => e instanceof UsageError && e.message === 'run r-1 has no fold 5 (it has 2: --fold 0..1)',
  );
  assert.throws(
    () => checkFetchableFold(run, 1),
    (e: unknown) => e instanceof UsageError && e.message === 'run r-1 fold 1 has not finished (finished: 0)',
  );
  checkFetchableFold(run, 0);
});
