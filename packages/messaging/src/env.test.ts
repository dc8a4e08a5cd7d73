import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, resolveOptions } from '@cvc/core';
import { natsEnvSchema } from './index.js';

const env = { CVC_NATS_URL: 'nats://a:4222,nats://b:4222' };

test('CVC_NATS_REPLICAS defaults to 1 and accepts 1..5', () => {
  assert.equal(resolveOptions(natsEnvSchema, env, 'environment').CVC_NATS_REPLICAS, 1);
  assert.equal(resolveOptions(natsEnvSchema, { ...env, CVC_NATS_REPLICAS: '3' }, 'environment').CVC_NATS_REPLICAS, 3);
});

test('CVC_NATS_REPLICAS outside 1..5 or not a whole number is refused by name', () => {
  for (const bad of ['0', '6', '2.5', 'three']) {
    assert.throws(
      () => resolveOptions(natsEnvSchema, { ...env, CVC_NATS_REPLICAS: bad }, 'environment'),
      (e: unknown) => e instanceof ConfigError && e.field === 'CVC_NATS_REPLICAS' && /CVC_NATS_REPLICAS/.test(e.message),
      bad,
    );
  }
});
