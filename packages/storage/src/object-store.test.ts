import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@cvc/core';
import { createObjectStore, logStoreRetries, startS3Server, StorageError, validateKey, layout, type ObjectStore, type S3Server } from './index.js';

let dir: string;
let s3: S3Server;
let store: ObjectStore;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cvc-s3-'));
  s3 = await startS3Server(dir);
  store = createObjectStore({
    endPoint: s3.endPoint,
    port: s3.port,
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
    bucket: 'cvc-test',
    partSize: 5 * 1024 * 1024,
  });
  await store.ensureBucket();
  await store.ensureBucket();
});
after(async () => {
  await s3.close();
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

test('small and multipart objects round-trip with their sha256 (real S3 server)', async () => {
  const small = new Uint8Array(1000).map((_, i) => i % 256);
  const r = await store.put('a/small.bin', small);
  assert.equal(r.bytes, 1000);
  assert.equal(r.sha256, sha(small));
  assert.deepEqual(await store.getBytes('a/small.bin'), small);

  // 12 MiB streamed in 1 MiB chunks: three 5 MiB-or-less parts through explicit multipart calls.
  const big = new Uint8Array(12 * 1024 * 1024).map((_, i) => (i * 7) % 251);
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < big.length; i += 1 << 20) yield await Promise.resolve(big.subarray(i, i + (1 << 20)));
  }
  const rb = await store.put('a/big.bin', chunks(), { expectSha256: sha(big) });
  assert.equal(rb.bytes, big.length);
  assert.deepEqual(await store.stat('a/big.bin'), { size: big.length });
  const back = await store.getBytes('a/big.bin');
  assert.equal(sha(back), sha(big));
  assert.deepEqual(await store.list('a/'), ['a/big.bin', 'a/small.bin']);
});

test('a checksum mismatch stores nothing and keeps what was there', async () => {
  const original = new Uint8Array([1, 2, 3]);
  await store.put('b/obj.bin', original);
  await assert.rejects(
    store.put('b/obj.bin', new Uint8Array([9, 9]), { expectSha256: sha(original) }),
    (e: unknown) => e instanceof StorageError && e.code === 'CHECKSUM_MISMATCH',
  );
  assert.deepEqual(await store.getBytes('b/obj.bin'), original);
  const big = new Uint8Array(11 * 1024 * 1024);
  await assert.rejects(
    store.put('b/big.bin', big, { expectSha256: '0'.repeat(64) }),
    (e: unknown) => e instanceof StorageError && e.code === 'CHECKSUM_MISMATCH',
  );
  assert.equal(await store.stat('b/big.bin'), undefined);
});

test('missing objects and invalid keys get clear errors', async () => {
  assert.equal(await store.stat('nope/x'), undefined);
  await assert.rejects(store.getBytes('nope/x'), (e: unknown) => e instanceof StorageError && e.code === 'NOT_FOUND' && /nope\/x/.test(e.message));
  for (const bad of ['../etc/passwd', 'a//b', '/abs', 'a/./b', 'x'.repeat(600), 'sp ace']) {
    assert.throws(() => validateKey(bad), StorageError, bad);
    await assert.rejects(store.put(bad, new Uint8Array(1)), StorageError);
  }
  assert.throws(() => layout.foldBest('../x', 0, 1), /run id/);
  assert.equal(layout.foldCheckpoint('run-1', 2, 7), 'runs/run-1/fold-2/checkpoints/epoch-0007.ckpt');
});

test('S3 unavailable for a few seconds: reads and multipart uploads retry with backoff, then succeed', async () => {
  const d = await mkdtemp(join(tmpdir(), 'cvc-s3-outage-'));
  let server = await startS3Server(d);
  const port = server.port;
  const warnings: Record<string, unknown>[] = [];
  const logger = { ...silentLogger, warn: (msg: string, fields?: Record<string, unknown>) => warnings.push({ msg, ...fields }) };
  const s = createObjectStore(
    { endPoint: server.endPoint, port, accessKey: server.accessKey, secretKey: server.secretKey, bucket: 'outage', partSize: 5 * 1024 * 1024 },
    logStoreRetries(logger),
  );
  try {
    await s.ensureBucket();
    assert.equal(warnings.length, 0, 'no retry while the server is up');
    const small = new Uint8Array([5, 6, 7]);
    await s.put('x/small.bin', small);
    await server.close();
    const big = new Uint8Array(12 * 1024 * 1024).map((_, i) => i % 241);
    // Both start while the server is down.
    const read = s.getBytes('x/small.bin');
    const write = s.put('x/big.bin', big, { expectSha256: sha(big) });
    assert.equal(await s.ping(), false, 'readiness reports the outage at once');
    await new Promise((r) => setTimeout(r, 3000));
    server = await startS3Server(d, port, server);
    assert.deepEqual(await read, small);
    assert.equal((await write).bytes, big.length);
    assert.equal(sha(await s.getBytes('x/big.bin')), sha(big));
    // Each retry was logged as a warning naming the failure and the wait.
    assert.ok(warnings.length >= 4, `${warnings.length} retries logged`);
    for (const w of warnings) {
      assert.equal(w['msg'], 'object storage unreachable; retrying');
      assert.match(String(w['error']), /ECONNREFUSED|socket hang up|ECONNRESET/);
      // Equal jitter: the first wait is in [100, 200] ms, none is over the 5 s cap.
      assert.ok(Number(w['retryInMs']) >= 100 && Number(w['retryInMs']) <= 5000);
    }
  } finally {
    await server.close();
    await rm(d, { recursive: true, force: true });
  }
});

// s3rver checks the access key but not SigV4 signatures, so a wrong secret
// key is not caught here (MinIO does catch it).
test('the S3 server refuses unsigned requests and unknown access keys', async () => {
  const d = await mkdtemp(join(tmpdir(), 'cvc-s3-auth-'));
  const server = await startS3Server(d);
  try {
    const good = createObjectStore({ endPoint: server.endPoint, port: server.port, accessKey: server.accessKey, secretKey: server.secretKey, bucket: 'auth' });
    await good.ensureBucket();
    await good.put('a/b.bin', new Uint8Array([1, 2, 3]));
    const anon = await fetch(`http://${server.endPoint}:${server.port}/auth/a/b.bin`);
    assert.equal(anon.status, 403);
    assert.match(await anon.text(), /AccessDenied/);
    assert.notEqual(server.accessKey, 'S3RVER', 'credentials are generated, not the well-known default');
    for (const [accessKey, secretKey] of [
      ['cvc0000000000000000', server.secretKey],
      ['S3RVER', 'S3RVER'],
    ] as const) {
      const bad = createObjectStore({ endPoint: server.endPoint, port: server.port, accessKey, secretKey, bucket: 'auth', retryForMs: 0 });
      // Refused, not unreachable: S3_ERROR (never UNAVAILABLE, which tells callers to retry).
      await assert.rejects(
        bad.getBytes('a/b.bin'),
        (err: Error) => err instanceof StorageError && err.code === 'S3_ERROR' && /access key/i.test(err.message),
        accessKey,
      );
    }
  } finally {
    await server.close();
    await rm(d, { recursive: true, force: true });
  }
});

test('S3 unreachable past the retry deadline: StorageError UNAVAILABLE naming the key, after retries', async () => {
  // A port that was just bound and released: connections are refused.
  const d = await mkdtemp(join(tmpdir(), 'cvc-s3-down-'));
  const server = await startS3Server(d);
  await server.close();
  const retries: number[] = [];
  const s = createObjectStore(
    { endPoint: server.endPoint, port: server.port, accessKey: server.accessKey, secretKey: server.secretKey, bucket: 'down', retryForMs: 400 },
    { onRetry: (_e, ms) => retries.push(ms) },
  );
  try {
    await assert.rejects(
      s.getBytes('x/y.bin'),
      (err: unknown) => err instanceof StorageError && err.code === 'UNAVAILABLE' && err.key === 'x/y.bin' && /unreachable/.test(err.message),
    );
    assert.ok(retries.length >= 1, 'retried before giving up');
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});
