import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancelledError, resolveOptions } from '@cvc/core';
import { createObjectStore, s3EnvSchema, startS3Server, StorageError, StorageStallError, storeOptionsFromEnv, type ObjectStore } from './index.js';

/** What the fake S3 server does with one request. */
type Behaviour = 'ok' | 'stall-mid-body' | 'stall-before-headers';

/** Without a stall deadline these reads hang: each test fails on its own timeout instead. */
const T = { timeout: 20_000 };

const BODY = Buffer.from('0123456789'.repeat(100));

/**
 * A real HTTP server on loopback standing in for S3: each request takes the
 * next behaviour of `script` (the last one repeats): the whole object, the
 * headers and the first 100 bytes and then silence, or silence at once.
 */
async function stallingServer(script: Behaviour[]): Promise<{ port: number; requests: () => number; close: () => Promise<void> }> {
  let n = 0;
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    const b = script[Math.min(n, script.length - 1)];
    n++;
    if (b === 'stall-before-headers') {
      held.push(res);
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(BODY.length),
      ETag: '"e"',
      'Last-Modified': new Date().toUTCString(),
    });
    if (req.method === 'HEAD') {
      res.end();
    } else if (b === 'ok') {
      res.end(BODY);
    } else {
      res.write(BODY.subarray(0, 100));
      held.push(res);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests: () => n,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

const storeOn = (port: number, retryForMs: number, onRetry?: (err: unknown) => void): ObjectStore =>
  createObjectStore(
    { endPoint: '127.0.0.1', port, accessKey: 'stall-test', secretKey: 'stall-test-secret', bucket: 'stalls', retryForMs, stallTimeoutMs: 300 },
    onRetry ? { onRetry } : {},
  );

const isStall =
  (key: string) =>
  (err: unknown): boolean =>
    err instanceof StorageStallError &&
    err.code === 'UNAVAILABLE' &&
    err.key === key &&
    err.bucket === 'stalls' &&
    err.stallSeconds === 0.3 &&
    /stalls/.test(err.message) &&
    err.message.includes(key) &&
    /no bytes for 0\.3 s/.test(err.message);

test(
  'a server that sends the headers and part of the body, then nothing: the read fails with StorageStallError naming bucket, key and seconds',
  T,
  async () => {
    const srv = await stallingServer(['stall-mid-body']);
    try {
      const retried: unknown[] = [];
      const store = storeOn(srv.port, 1000, (e) => retried.push(e));
      await assert.rejects(store.getBytes('a/shard-0.cvcs'), isStall('a/shard-0.cvcs'));
      // Retried with the store's policy while the budget lasted, each time as a stall.
      assert.ok(retried.length >= 1, `${retried.length} retries`);
      assert.ok(retried.every(isStall('a/shard-0.cvcs')));
      assert.equal(srv.requests(), retried.length + 1);
    } finally {
      await srv.close();
    }
  },
);

test('a server that accepts the connection and never answers: the read (get and stat) fails as a stall', T, async () => {
  const srv = await stallingServer(['stall-before-headers']);
  try {
    const store = storeOn(srv.port, 0);
    await assert.rejects(store.getBytes('b/manifest.json'), isStall('b/manifest.json'));
    await assert.rejects(store.stat('b/manifest.json'), isStall('b/manifest.json'));
  } finally {
    await srv.close();
  }
});

test('a server that never answers a write, a removal or a listing: each fails as a stall naming the key, and nothing is left waiting', T, async () => {
  const srv = await stallingServer(['stall-before-headers']);
  try {
    const store = storeOn(srv.port, 0);
    const stallOf = (key: string, what: string) => (err: unknown) =>
      err instanceof StorageStallError &&
      err.key === key &&
      err.code === 'UNAVAILABLE' &&
      err.message.startsWith(`${key}: ${what} stalled: `) &&
      /no bytes for 0\.3 s/.test(err.message);
    await assert.rejects(store.put('f/epoch-1.ckpt', new Uint8Array(1000)), stallOf('f/epoch-1.ckpt', 'write to bucket stalls'));
    await assert.rejects(store.remove('f/epoch-0.ckpt'), stallOf('f/epoch-0.ckpt', 'remove from bucket stalls'));
    await assert.rejects(store.list('f/'), stallOf('f/', 'list from bucket stalls'));
    await assert.rejects(store.ensureBucket(), (err: unknown) => err instanceof StorageStallError);
  } finally {
    await srv.close();
  }
});

test('a transient stall is retried: the next try gets the whole object', T, async () => {
  const srv = await stallingServer(['stall-mid-body', 'stall-before-headers', 'ok']);
  try {
    const retried: unknown[] = [];
    const store = storeOn(srv.port, 10_000, (e) => retried.push(e));
    assert.deepEqual(Buffer.from(await store.getBytes('c/shard-1.cvcs')), BODY);
    assert.equal(retried.length, 2);
    assert.ok(retried.every(isStall('c/shard-1.cvcs')));
    assert.equal(srv.requests(), 3);
  } finally {
    await srv.close();
  }
});

test('a stream whose body stalls once it flows fails the iteration with StorageStallError', T, async () => {
  const srv = await stallingServer(['stall-mid-body']);
  try {
    const store = storeOn(srv.port, 0);
    const got: Uint8Array[] = [];
    await assert.rejects(async () => {
      for await (const c of await store.getStream('d/best.ckpt')) got.push(c);
    }, isStall('d/best.ckpt'));
    assert.equal(Buffer.concat(got).length, 100, 'the part that came was passed on');
  } finally {
    await srv.close();
  }
});

test('real S3 server: a consumer slower than the stall deadline is not a stall; reads and a missing key behave as before', T, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-s3-stall-'));
  const s3 = await startS3Server(dir);
  try {
    const settings = { endPoint: s3.endPoint, port: s3.port, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'stall-ok' };
    // The object is written with the default deadline: this test is about reads, and a 200 ms deadline can cut
    // a multipart upload's part on a loaded machine (s3rver then answers 500).
    const writer = createObjectStore(settings);
    await writer.ensureBucket();
    const big = new Uint8Array(8 * 1024 * 1024).map((_, i) => i % 253);
    await writer.put('e/big.bin', big);
    const store = createObjectStore({ ...settings, stallTimeoutMs: 200 });
    assert.deepEqual(await store.getBytes('e/big.bin'), big);
    assert.deepEqual(await store.stat('e/big.bin'), { size: big.length });
    // The consumer pauses longer than the deadline after its first chunks: the server is not silent, we are.
    let bytes = 0;
    let chunks = 0;
    for await (const c of await store.getStream('e/big.bin')) {
      bytes += c.length;
      if (chunks++ < 2) await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(bytes, big.length);
    await assert.rejects(store.getBytes('e/none.bin'), (e: unknown) => e instanceof StorageError && e.code === 'NOT_FOUND');
    // A kept-alive socket idle past the deadline is closed quietly; the next read opens another.
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(await store.getBytes('e/big.bin'), big);
  } finally {
    await s3.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('CVC_S3_STALL_TIMEOUT_MS sets the stall deadline; unset leaves the default; under 1000 ms is refused, naming it', () => {
  const env = { CVC_S3_ENDPOINT: 'minio', CVC_S3_PORT: '9000', CVC_S3_ACCESS_KEY: 'a', CVC_S3_SECRET_KEY: 's' };
  assert.equal(storeOptionsFromEnv(resolveOptions(s3EnvSchema, { ...env, CVC_S3_STALL_TIMEOUT_MS: '5000' }, 'environment')).stallTimeoutMs, 5000);
  assert.equal(storeOptionsFromEnv(resolveOptions(s3EnvSchema, env, 'environment')).stallTimeoutMs, undefined);
  assert.throws(
    () => resolveOptions(s3EnvSchema, { ...env, CVC_S3_STALL_TIMEOUT_MS: '500' }, 'environment'),
    /CVC_S3_STALL_TIMEOUT_MS must be at least 1000 ms/,
  );
});

for (const b of ['stall-mid-body', 'stall-before-headers'] as const) {
  test(`an abort ends a read that would wait a minute (${b}): CancelledError naming the key, the request is closed`, T, async () => {
    const srv = await stallingServer([b]);
    try {
      const store = createObjectStore({
        endPoint: '127.0.0.1',
        port: srv.port,
        accessKey: 'k',
        secretKey: 'stall-test-secret',
        bucket: 'stalls',
        stallTimeoutMs: 60_000,
      });
      const ac = new AbortController();
      const read = store.getBytes('c/shard-1.cvcs', { signal: ac.signal });
      // Aborted once the server holds the request (before its headers or mid-body).
      while (srv.requests() === 0) await new Promise((r) => setTimeout(r, 10));
      ac.abort(new Error('worker stopping'));
      await assert.rejects(read, (e: unknown) => e instanceof CancelledError && e.message.includes('c/shard-1.cvcs'));
      assert.equal(srv.requests(), 1, 'not retried');
    } finally {
      await srv.close();
    }
  });
}
