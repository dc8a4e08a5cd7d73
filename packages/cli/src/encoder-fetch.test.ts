import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DatasetManifest } from '@cvc/data';
import { clusterAccClasses } from './encoder-cmd.js';
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
});
