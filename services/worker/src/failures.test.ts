import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataError } from '@cvc/data';
import { ModelError } from '@cvc/model';
import { StorageError } from '@cvc/storage';
import { isPermanentFailure } from './failures.js';

test('a malformed dataset is final at once; a missing object, a broken download or a newer shard format is retried', () => {
  for (const code of ['MANIFEST_CORRUPT', 'SHARD_TRUNCATED', 'SHARD_BAD_MAGIC', 'SHARD_CORRUPT', 'SHARD_EMPTY', 'SHARD_BAD_INDEX', 'SHAPE_MISMATCH'] as const)
    assert.equal(isPermanentFailure(new DataError(code, 'bad', 'datasets/x/v1/fold-0.cvcs')), true, code);
  for (const code of ['SHARD_CHECKSUM', 'SHARD_MISSING', 'MANIFEST_MISSING', 'SHARD_BAD_VERSION', 'FILE_UNREADABLE'] as const)
    assert.equal(isPermanentFailure(new DataError(code, 'maybe', 'datasets/x/v1/fold-0.cvcs')), false, code);
  assert.equal(isPermanentFailure(new ModelError('LOSS_NOT_FINITE', 'NaN')), true);
  assert.equal(isPermanentFailure(new StorageError('UNAVAILABLE', 'down', 'k')), false);
  assert.equal(isPermanentFailure(new Error('SHARD_CORRUPT')), false);
});
