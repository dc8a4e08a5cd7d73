import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { TimeoutError } from '@nats-io/nats-core';
import { CancelledError, ConfigError, CvcError } from '@cvc/core';
import { DataError } from '@cvc/data';
import { MessagingError } from '@cvc/messaging';
import { ModelError } from '@cvc/model';
import { RETRY_AFTER_MS_KEY } from '@cvc/proto';
import { AuthError } from '@cvc/security';
import { StorageError } from '@cvc/storage';
import { CoordinatorError, UploadsBusyError, type Outcome } from './errors.js';
import { dataStatus, messagingStatus, modelStatus, storageStatus, toStatus } from './to-status.js';

const name = (c: status | undefined): string => (c === undefined ? 'undefined' : (status[c] ?? String(c)));

/** The intended status of every code, written out (not read from the tables under test). */
const expected = {
  storage: {
    NOT_FOUND: status.NOT_FOUND,
    UNAVAILABLE: status.UNAVAILABLE,
    S3_ERROR: status.INTERNAL,
    CHECKSUM_MISMATCH: status.DATA_LOSS,
    KEY_INVALID: status.INVALID_ARGUMENT,
    NAME_INVALID: status.INVALID_ARGUMENT,
    CATALOG_CORRUPT: status.DATA_LOSS,
    DATASET_NOT_IMPORTED: status.NOT_FOUND,
    FOLDS_MISMATCH: status.FAILED_PRECONDITION,
  },
  model: {
    CHECKPOINT_CORRUPT: status.DATA_LOSS,
    CHECKPOINT_CHECKSUM: status.DATA_LOSS,
    CHECKPOINT_MISMATCH: status.FAILED_PRECONDITION,
    ENCODER_UNREADABLE: status.FAILED_PRECONDITION,
    SHAPE_MISMATCH: status.INVALID_ARGUMENT,
    EMPTY_DATA: status.FAILED_PRECONDITION,
    NO_EPOCHS: status.FAILED_PRECONDITION,
    LOSS_NOT_FINITE: status.FAILED_PRECONDITION,
    CODES_NOT_FINITE: status.FAILED_PRECONDITION,
    EXPORT_FAILED: status.INTERNAL,
    ABORTED: status.CANCELLED,
  },
  messaging: {
    NOT_FOUND: status.NOT_FOUND,
    ALREADY_EXISTS: status.ALREADY_EXISTS,
    CONFLICT: status.ABORTED,
    TASK_MALFORMED: status.INTERNAL,
    NATS_START: status.INTERNAL,
    NATS_REPLICAS: status.FAILED_PRECONDITION,
    TOO_LARGE: status.RESOURCE_EXHAUSTED,
  },
  coordinator: {
    NOT_FOUND: status.NOT_FOUND,
    INVALID_ARGUMENT: status.INVALID_ARGUMENT,
    FAILED_PRECONDITION: status.FAILED_PRECONDITION,
    RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
    CANCELLED: status.CANCELLED,
    DATA_LOSS: status.DATA_LOSS,
    ALREADY_EXISTS: status.ALREADY_EXISTS,
    UNAVAILABLE: status.UNAVAILABLE,
    DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  } satisfies Record<Outcome, status>,
} as const;

test('toStatus: every storage, model, messaging and coordinator code maps to its intended status, with the message', () => {
  assert.deepEqual(Object.keys(storageStatus).sort(), Object.keys(expected.storage).sort(), 'the table covers every storage code');
  for (const [code, want] of Object.entries(expected.storage)) {
    const s = toStatus(new StorageError(code as keyof typeof expected.storage, 'boom', 'some/key'));
    assert.equal(name(s.code), name(want), `StorageError ${code}`);
    assert.match(s.details ?? '', /some\/key: boom/);
  }
  assert.deepEqual(Object.keys(modelStatus).sort(), Object.keys(expected.model).sort(), 'the table covers every model code');
  for (const [code, want] of Object.entries(expected.model)) {
    assert.equal(name(toStatus(new ModelError(code as keyof typeof expected.model, 'boom')).code), name(want), `ModelError ${code}`);
  }
  assert.deepEqual(Object.keys(messagingStatus).sort(), Object.keys(expected.messaging).sort(), 'the table covers every messaging code');
  for (const [code, want] of Object.entries(expected.messaging)) {
    assert.equal(name(toStatus(new MessagingError(code as keyof typeof expected.messaging, 'boom')).code), name(want), `MessagingError ${code}`);
  }
  for (const [code, want] of Object.entries(expected.coordinator)) {
    assert.equal(name(toStatus(new CoordinatorError(code as Outcome, 'boom')).code), name(want), `CoordinatorError ${code}`);
  }
});

test('toStatus: data codes: corruption is DATA_LOSS, absence NOT_FOUND, and none is UNAVAILABLE', () => {
  const corrupt = [
    'GZIP_CORRUPT',
    'IDX_TRUNCATED',
    'IDX_BAD_MAGIC',
    'MANIFEST_CORRUPT',
    'SHARD_CORRUPT',
    'SHARD_CHECKSUM',
    'SHARD_TRUNCATED',
    'CHECKSUM_MISMATCH',
    'TAR_CORRUPT',
  ] as const;
  for (const code of corrupt) assert.equal(name(toStatus(new DataError(code, 'x', 'f')).code), 'DATA_LOSS', code);
  for (const code of ['FILE_MISSING', 'MANIFEST_MISSING', 'SHARD_MISSING'] as const)
    assert.equal(name(toStatus(new DataError(code, 'x')).code), 'NOT_FOUND', code);
  for (const code of Object.keys(dataStatus) as (keyof typeof dataStatus)[]) {
    const s = toStatus(new DataError(code, 'x')).code;
    assert.notEqual(s, status.UNAVAILABLE, `${code} must not tell clients to retry`);
    assert.notEqual(s, status.OK, code);
  }
});

test('toStatus: only real unavailability is UNAVAILABLE', () => {
  const unavailable: unknown[] = [
    new StorageError('UNAVAILABLE', 'S3 unreachable'),
    new CoordinatorError('UNAVAILABLE', 'busy'),
    new TimeoutError(),
    new JetStreamApiError({ err_code: 10008, code: 503, description: 'JetStream system temporarily unavailable' }),
  ];
  for (const e of unavailable) assert.equal(name(toStatus(e).code), 'UNAVAILABLE', String(e));
  const not: unknown[] = [
    new StorageError('CHECKSUM_MISMATCH', 'x'),
    new StorageError('CATALOG_CORRUPT', 'x'),
    new StorageError('S3_ERROR', 'access denied'),
    new DataError('MANIFEST_CORRUPT', 'x'),
    // A lost compare-and-set that escaped the store's retry loop is not "unavailable".
    new JetStreamApiError({ err_code: JetStreamApiCodes.StreamWrongLastSequence, code: 400, description: 'wrong last sequence: 4' }),
    // Message text is not read: this is an ordinary error.
    new Error('JetStream system temporarily unavailable'),
  ];
  for (const e of not) assert.notEqual(name(toStatus(e).code), 'UNAVAILABLE', String(e));
});

test('toStatus: auth, busy uploads, config, cancellation and unknown errors', () => {
  assert.equal(toStatus(new AuthError('UNAUTHENTICATED', 'no token')).code, status.UNAUTHENTICATED);
  assert.equal(toStatus(new AuthError('PERMISSION_DENIED', 'wrong role')).code, status.PERMISSION_DENIED);
  const busy = toStatus(new UploadsBusyError(8, 750));
  assert.equal(busy.code, status.RESOURCE_EXHAUSTED);
  assert.deepEqual(busy.metadata?.get(RETRY_AFTER_MS_KEY), ['750'], 'the retry hint travels in the trailers');
  const cfg = toStatus(new ConfigError('spec.learningRate', 'must be finite'));
  assert.equal(cfg.code, status.INVALID_ARGUMENT);
  assert.match(cfg.details ?? '', /spec\.learningRate/);
  assert.equal(toStatus(new CancelledError('the run')).code, status.CANCELLED);
  assert.equal(toStatus(new CvcError('SOMETHING_NEW', 'x')).code, status.INTERNAL);
  const unknown = toStatus(new TypeError('undefined is not a function'));
  assert.equal(unknown.code, status.INTERNAL);
  assert.match(unknown.details ?? '', /internal error: undefined is not a function/);
  assert.equal(toStatus('a string').code, status.INTERNAL);
});
