import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { ConfigError } from '@cvc/core';
import { workerConfigFromEnv } from './config.js';

const good = {
  CVC_NATS_URL: 'nats://127.0.0.1:4222',
  CVC_S3_ENDPOINT: 'minio',
  CVC_S3_PORT: '9000',
  CVC_S3_ACCESS_KEY: 'a',
  CVC_S3_SECRET_KEY: 's',
  CVC_COORDINATOR: '127.0.0.1:50051',
};

test('CVC_PROGRESS_INTERVAL_MS defaults to 3000 ms; 0 turns progress reports off', () => {
  assert.equal(workerConfigFromEnv(good).CVC_PROGRESS_INTERVAL_MS, 3000);
  assert.equal(workerConfigFromEnv({ ...good, CVC_PROGRESS_INTERVAL_MS: '0' }).CVC_PROGRESS_INTERVAL_MS, 0);
  assert.equal(workerConfigFromEnv({ ...good, CVC_PROGRESS_INTERVAL_MS: '500' }).CVC_PROGRESS_INTERVAL_MS, 500);
});

test('a CVC_PROGRESS_INTERVAL_MS below 500, above 10 minutes, negative or not an integer is refused, naming the variable', () => {
  for (const v of ['100', '-1', '1.5', 'often', '600001']) {
    assert.throws(
      () => workerConfigFromEnv({ ...good, CVC_PROGRESS_INTERVAL_MS: v }),
      (e: unknown) => e instanceof ConfigError && e.field === 'CVC_PROGRESS_INTERVAL_MS',
      v,
    );
  }
});

test('CVC_METRICS_RETENTION_MS defaults to 10 minutes; a negative, fractional, non-numeric or over-a-day value is refused, naming it', () => {
  assert.equal(workerConfigFromEnv(good).CVC_METRICS_RETENTION_MS, 600_000);
  assert.equal(workerConfigFromEnv({ ...good, CVC_METRICS_RETENTION_MS: '0' }).CVC_METRICS_RETENTION_MS, 0);
  assert.equal(workerConfigFromEnv({ ...good, CVC_METRICS_RETENTION_MS: '60000' }).CVC_METRICS_RETENTION_MS, 60_000);
  for (const v of ['-1', '1.5', 'ten minutes', '86400001']) {
    assert.throws(
      () => workerConfigFromEnv({ ...good, CVC_METRICS_RETENTION_MS: v }),
      (e: unknown) => e instanceof ConfigError && e.field === 'CVC_METRICS_RETENTION_MS' && e.message.includes('CVC_METRICS_RETENTION_MS'),
      v,
    );
  }
});

test('CVC_WASM_THREADS defaults to the cores of the machine (a worker alone on it); a value given wins', () => {
  assert.equal(workerConfigFromEnv(good).CVC_WASM_THREADS, Math.min(64, availableParallelism()));
  assert.equal(workerConfigFromEnv({ ...good, CVC_WASM_THREADS: '3' }).CVC_WASM_THREADS, 3);
  assert.throws(() => workerConfigFromEnv({ ...good, CVC_WASM_THREADS: '0' }), ConfigError);
});

test('an empty or blank variable counts as unset: CVC_FAULT_FAIL_FOLD= does not make fold 0 fail, nor does an empty number become 0', () => {
  for (const blank of ['', '  ']) {
    const cfg = workerConfigFromEnv({
      ...good,
      CVC_FAULT_FAIL_FOLD: blank,
      CVC_PROGRESS_INTERVAL_MS: blank,
      CVC_METRICS_PORT: blank,
      CVC_METRICS_RETENTION_MS: blank,
      CVC_WASM_THREADS: blank,
      CVC_WORKER_ID: blank,
      CVC_CACHE_DIR: blank,
    });
    assert.equal(cfg.CVC_FAULT_FAIL_FOLD, undefined, 'no fault injection');
    assert.equal(cfg.CVC_PROGRESS_INTERVAL_MS, 3000);
    assert.equal(cfg.CVC_METRICS_PORT, 9465);
    assert.equal(cfg.CVC_METRICS_RETENTION_MS, 600_000);
    assert.equal(cfg.CVC_WASM_THREADS, Math.min(64, availableParallelism()));
    assert.notEqual(cfg.CVC_WORKER_ID.trim(), '', 'a worker id');
    assert.notEqual(cfg.CVC_CACHE_DIR.trim(), '', 'not the working directory');
  }
  assert.equal(workerConfigFromEnv({ ...good, CVC_FAULT_FAIL_FOLD: '0' }).CVC_FAULT_FAIL_FOLD, 0, 'an explicit 0 still injects');
  assert.throws(
    () => workerConfigFromEnv({ ...good, CVC_FAULT_FAIL_FOLD: 'two' }),
    (e: unknown) => e instanceof ConfigError && e.field === 'CVC_FAULT_FAIL_FOLD',
  );
});

test('CVC_CACHE_MAX_BYTES defaults to 10 GiB; 0 is no limit; a negative or fractional value is refused, naming the variable', () => {
  assert.equal(workerConfigFromEnv(good).CVC_CACHE_MAX_BYTES, 10 * 2 ** 30);
  assert.equal(workerConfigFromEnv({ ...good, CVC_CACHE_MAX_BYTES: '0' }).CVC_CACHE_MAX_BYTES, 0);
  assert.equal(workerConfigFromEnv({ ...good, CVC_CACHE_MAX_BYTES: '' }).CVC_CACHE_MAX_BYTES, 10 * 2 ** 30);
  for (const v of ['-1', '1.5', 'lots'])
    assert.throws(
      () => workerConfigFromEnv({ ...good, CVC_CACHE_MAX_BYTES: v }),
      (e: unknown) => e instanceof ConfigError && e.field === 'CVC_CACHE_MAX_BYTES',
      v,
    );
});

test('CVC_COORDINATOR_HUNG_MS defaults to 5 minutes and CVC_COORDINATOR_CALL_TIMEOUT_MS to unset (the clients keep theirs); below 1 s is refused, naming the variable', () => {
  assert.equal(workerConfigFromEnv(good).CVC_COORDINATOR_HUNG_MS, 300_000);
  assert.equal(workerConfigFromEnv({ ...good, CVC_COORDINATOR_CALL_TIMEOUT_MS: '' }).CVC_COORDINATOR_CALL_TIMEOUT_MS, undefined);
  assert.equal(workerConfigFromEnv({ ...good, CVC_COORDINATOR_CALL_TIMEOUT_MS: '5000' }).CVC_COORDINATOR_CALL_TIMEOUT_MS, 5000);
  for (const name of ['CVC_COORDINATOR_HUNG_MS', 'CVC_COORDINATOR_CALL_TIMEOUT_MS'] as const) {
    for (const v of ['999', '-1', 'soon']) {
      assert.throws(
        () => workerConfigFromEnv({ ...good, [name]: v }),
        (e: unknown) => e instanceof ConfigError && e.field === name,
        `${name}=${v}`,
      );
    }
  }
});
