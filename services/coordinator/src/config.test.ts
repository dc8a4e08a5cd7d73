import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '@cvc/core';
import { coordinatorConfigFromEnv } from './index.js';

const good = { CVC_NATS_URL: 'nats://127.0.0.1:4222', CVC_S3_ENDPOINT: 'minio', CVC_S3_PORT: '9000', CVC_S3_ACCESS_KEY: 'a', CVC_S3_SECRET_KEY: 's' };

test('configuration comes from the environment with defaults', () => {
  const c = coordinatorConfigFromEnv(good);
  assert.equal(c.CVC_S3_PORT, 9000);
  assert.equal(c.CVC_S3_BUCKET, 'cvc');
  assert.equal(c.CVC_GRPC_PORT, 50051);
  assert.equal(c.CVC_ACK_WAIT_MS, 60_000);
  assert.equal(c.CVC_MAX_DELIVER, 5);
  assert.equal(c.CVC_FAULT_HOLD_FINALIZE_MS, 0, 'no fault injection unless asked for');
  assert.equal(coordinatorConfigFromEnv({ ...good, CVC_FAULT_HOLD_FINALIZE_MS: '2500' }).CVC_FAULT_HOLD_FINALIZE_MS, 2500);
});

test('a missing or wrong variable is named in the error, and no secret is echoed', () => {
  assert.throws(
    () => coordinatorConfigFromEnv({ ...good, CVC_S3_PORT: 'ninety' }),
    (e: unknown) => e instanceof ConfigError && e.field === 'CVC_S3_PORT',
  );
  assert.throws(
    () => coordinatorConfigFromEnv({ ...good, CVC_NATS_URL: undefined }),
    (e: unknown) => e instanceof ConfigError && e.field === 'CVC_NATS_URL',
  );
  assert.throws(
    () => coordinatorConfigFromEnv({ ...good, CVC_MAX_DELIVER: '0' }),
    (e: unknown) => e instanceof ConfigError && e.field === 'CVC_MAX_DELIVER',
  );
  assert.throws(
    () => coordinatorConfigFromEnv({ ...good, CVC_FAULT_HOLD_FINALIZE_MS: '-1' }),
    (e: unknown) => e instanceof ConfigError && e.field === 'CVC_FAULT_HOLD_FINALIZE_MS',
  );
  assert.throws(
    () => coordinatorConfigFromEnv({ ...good, CVC_S3_SECRET_KEY: '' }),
    (e: unknown) => e instanceof ConfigError && e.field === 'CVC_S3_SECRET_KEY' && !e.message.includes('super-secret'),
  );
});

test('CVC_METRICS_RETENTION_MS defaults to 10 minutes (empty counts as unset); a negative, fractional, non-numeric or over-a-day value is refused, naming it', () => {
  assert.equal(coordinatorConfigFromEnv(good).CVC_METRICS_RETENTION_MS, 600_000);
  assert.equal(coordinatorConfigFromEnv({ ...good, CVC_METRICS_RETENTION_MS: '' }).CVC_METRICS_RETENTION_MS, 600_000);
  assert.equal(coordinatorConfigFromEnv({ ...good, CVC_METRICS_RETENTION_MS: '0' }).CVC_METRICS_RETENTION_MS, 0);
  assert.equal(coordinatorConfigFromEnv({ ...good, CVC_METRICS_RETENTION_MS: '60000' }).CVC_METRICS_RETENTION_MS, 60_000);
  for (const v of ['-1', '1.5', 'ten minutes', '86400001']) {
    assert.throws(
      () => coordinatorConfigFromEnv({ ...good, CVC_METRICS_RETENTION_MS: v }),
      (e: unknown) => e instanceof ConfigError && e.field === 'CVC_METRICS_RETENTION_MS' && e.message.includes('CVC_METRICS_RETENTION_MS'),
      v,
    );
  }
});

test('CVC_GRPC_PORT, CVC_MAX_CHECKPOINT_BYTES and CVC_UPLOAD_IDLE_MS out of range are refused, naming them', () => {
  assert.equal(coordinatorConfigFromEnv(good).CVC_UPLOAD_IDLE_MS, 120_000);
  for (const [field, v] of [
    ['CVC_GRPC_PORT', '70000'],
    ['CVC_GRPC_PORT', '-1'],
    ['CVC_MAX_CHECKPOINT_BYTES', '0'],
    ['CVC_MAX_CHECKPOINT_BYTES', '-5'],
    ['CVC_UPLOAD_IDLE_MS', '500'],
  ] as const) {
    assert.throws(
      () => coordinatorConfigFromEnv({ ...good, [field]: v }),
      (e: unknown) => e instanceof ConfigError && e.field === field,
      `${field}=${v}`,
    );
  }
});

test('the gRPC keepalive and the watch caps have defaults and refuse values out of range, naming them', () => {
  const c = coordinatorConfigFromEnv(good);
  assert.deepEqual([c.CVC_GRPC_KEEPALIVE_MS, c.CVC_GRPC_KEEPALIVE_TIMEOUT_MS, c.CVC_MAX_WATCHES_PER_CLIENT, c.CVC_MAX_WATCHES], [60_000, 20_000, 64, 2048]);
  assert.equal(coordinatorConfigFromEnv({ ...good, CVC_MAX_WATCHES_PER_CLIENT: '8' }).CVC_MAX_WATCHES_PER_CLIENT, 8);
  for (const [field, v] of [
    ['CVC_GRPC_KEEPALIVE_MS', '10'],
    ['CVC_GRPC_KEEPALIVE_TIMEOUT_MS', '0'],
    ['CVC_MAX_WATCHES_PER_CLIENT', '0'],
    ['CVC_MAX_WATCHES', '-1'],
  ] as const) {
    assert.throws(
      () => coordinatorConfigFromEnv({ ...good, [field]: v }),
      (e: unknown) => e instanceof ConfigError && e.field === field,
      `${field}=${v}`,
    );
  }
});
