import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@cvc/core';
import { parseClusterFile, resolveCluster } from './cluster-config.js';
import { s3OptionsFromEnv } from './env.js';
import { UsageError } from './errors.js';

const good = {
  coordinator: '127.0.0.1:50051',
  natsUrl: 'nats://127.0.0.1:4222',
  s3: { endPoint: '127.0.0.1', port: 9000, accessKey: 'ak', secretKey: 'sk-secret-value', bucket: 'cvc' },
  security: { token: 't', caFile: 'pki/ca.pem', serverName: 'localhost' },
};

/** Asserts that parsing `json` fails with a UsageError naming the file and matching `msg`. */
function bad(json: unknown, msg: RegExp): void {
  const text = typeof json === 'string' ? json : JSON.stringify(json);
  assert.throws(
    () => parseClusterFile(text, 'some/cluster.json'),
    (e: unknown) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.match(e.message, /^cluster file some\/cluster\.json/);
      assert.match(e.message, msg);
      assert.doesNotMatch(e.message, /sk-secret-value/);
      return true;
    },
  );
}

test('a cluster.json is validated: malformed JSON, a missing field or a wrong type names the file and the field', () => {
  assert.equal(parseClusterFile(JSON.stringify(good), 'f').s3.port, 9000);
  assert.equal(parseClusterFile(JSON.stringify({ ...good, futureField: 1 }), 'f').coordinator, good.coordinator);
  bad('{"coordinator": ', /is not valid JSON/);
  bad('sk-secret-value', /is not valid JSON: Unexpected token/);
  bad('[]', /\(top level\)/);
  bad({ ...good, coordinator: undefined }, /: coordinator: is missing$/);
  bad({ ...good, coordinator: 5 }, /: coordinator: /);
  bad({ ...good, s3: undefined }, /: s3: is missing$/);
  bad({ ...good, s3: { ...good.s3, port: '9000' } }, /: s3\.port: must be a finite number/);
  bad({ ...good, s3: { ...good.s3, port: 70000 } }, /: s3\.port: must be <= 65535/);
  bad({ ...good, s3: { ...good.s3, secretKey: undefined } }, /: s3\.secretKey: is missing/);
  bad({ ...good, s3: { ...good.s3, secretKey: 7 } }, /: s3\.secretKey: /);
  bad({ ...good, s3: { ...good.s3, bucket: 'UPPER' } }, /: s3\.bucket: /);
  bad({ ...good, security: { ...good.security, insecure: 'yes' } }, /: security\.insecure: /);
  bad({ ...good, security: { ...good.security, tokne: 'x' } }, /: security: .*tokne/);
});

test('resolveCluster reads and checks the file, resolves TLS paths beside it, and reports a missing file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-cluster-'));
  try {
    const file = join(dir, 'cluster.json');
    await writeFile(file, JSON.stringify(good));
    const c = await resolveCluster(file, {});
    assert.equal(c.security?.caFile, join(dir, 'pki/ca.pem'));
    assert.equal(c.security?.token, 't');
    assert.equal((await resolveCluster(file, { CVC_TOKEN: 'env' })).security?.token, 'env');
    await writeFile(file, JSON.stringify({ ...good, s3: { ...good.s3, port: 'x' } }));
    await assert.rejects(resolveCluster(file, {}), (e: unknown) => e instanceof UsageError && e.message.includes(file) && /s3\.port/.test(e.message));
    await assert.rejects(
      resolveCluster(join(dir, 'none.json'), {}),
      (e: unknown) => e instanceof UsageError && /no cluster found: .*none\.json is missing/.test(e.message),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('S3 settings from the environment are read with the storage schema, naming a bad variable', async () => {
  const env = { CVC_S3_ENDPOINT: 'minio', CVC_S3_PORT: '9000', CVC_S3_ACCESS_KEY: 'a', CVC_S3_SECRET_KEY: 's' };
  assert.deepEqual(s3OptionsFromEnv(env), { endPoint: 'minio', port: 9000, useSSL: false, accessKey: 'a', secretKey: 's', bucket: 'cvc' });
  assert.equal(s3OptionsFromEnv({ ...env, CVC_S3_USE_SSL: 'true' }).useSSL, true);
  assert.throws(
    () => s3OptionsFromEnv({ ...env, CVC_S3_PORT: 'ninety' }),
    (e: unknown) => e instanceof ConfigError && e.field === 'CVC_S3_PORT',
  );
  assert.throws(
    () => s3OptionsFromEnv({ ...env, CVC_S3_SECRET_KEY: undefined }),
    (e: unknown) => e instanceof ConfigError && e.field === 'CVC_S3_SECRET_KEY',
  );
  assert.throws(
    () => s3OptionsFromEnv({ ...env, CVC_S3_USE_SSL: 'yes' }),
    (e: unknown) => e instanceof ConfigError && e.field === 'CVC_S3_USE_SSL',
  );
  // The CLI's environment path uses it: a bad port is an error, not NaN.
  await assert.rejects(
    resolveCluster(undefined, { ...env, CVC_COORDINATOR: 'c:1', CVC_S3_PORT: 'x', CVC_INSECURE: 'true' }),
    (e: unknown) => e instanceof ConfigError && e.field === 'CVC_S3_PORT',
  );
  const c = await resolveCluster(undefined, { ...env, CVC_COORDINATOR: 'c:1', CVC_INSECURE: 'true' });
  assert.equal(c.s3.port, 9000);
});
