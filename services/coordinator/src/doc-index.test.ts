import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DocIndex } from './doc-index.js';

test('a full recovery read drops the entries of documents gone from the bucket, so the index holds no more than the bucket', () => {
  let now = 0;
  const index = new DocIndex({ prefix: 'run.', fullReadEveryMs: 1000, now: () => now });
  index.saw('a', 1, true);
  index.saw('b', 2, true);
  assert.deepEqual(index.recoveryKeys(['run.a', 'run.b'], true), ['run.a', 'run.b']);
  assert.deepEqual(index.recoveryKeys(['run.a'], false), [], 'within the hour, settled documents are skipped and nothing is dropped');
  assert.equal(index.createdAt('b'), 2);
  now = 1000;
  assert.deepEqual(index.recoveryKeys(['run.a'], false), ['run.a'], 'the hourly full read');
  assert.deepEqual([index.createdAt('a'), index.createdAt('b'), index.isSettled('b')], [1, undefined, false], 'b was deleted from the bucket');
});
