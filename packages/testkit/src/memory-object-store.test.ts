import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { StorageError } from '@cvc/storage';
import { createMemoryObjectStore } from './index.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const code = (c: string) => (e: unknown) => e instanceof StorageError && e.code === c;

test('put/get/stat/list/remove with the real store keys and errors', async () => {
  const s = createMemoryObjectStore();
  const data = new Uint8Array(200_000).map((_, i) => i % 251);
  const r = await s.put('runs/a/x.bin', data, { expectSha256: sha(data) });
  assert.deepEqual(r, { key: 'runs/a/x.bin', bytes: data.length, sha256: sha(data) });
  assert.deepEqual(await s.getBytes('runs/a/x.bin'), data);
  const chunks: Uint8Array[] = [];
  for await (const c of await s.getStream('runs/a/x.bin')) chunks.push(c);
  assert.ok(chunks.length > 1);
  assert.deepEqual(new Uint8Array(Buffer.concat(chunks)), data);
  assert.deepEqual(await s.stat('runs/a/x.bin'), { size: data.length });
  assert.equal(await s.stat('runs/a/none'), undefined);
  await s.put(
    'runs/b/y.json',
    (function* () {
      yield new TextEncoder().encode('{}');
    })(),
    { contentType: 'application/json' },
  );
  assert.deepEqual(await s.list('runs/'), ['runs/a/x.bin', 'runs/b/y.json']);
  assert.equal(s.object('runs/b/y.json')?.contentType, 'application/json');
  await s.remove('runs/a/x.bin');
  await s.remove('runs/a/x.bin');
  await assert.rejects(s.getBytes('runs/a/x.bin'), (e: unknown) => code('NOT_FOUND')(e) && /runs\/a\/x\.bin: get: no such object/.test((e as Error).message));
  await assert.rejects(s.getStream('runs/a/x.bin'), code('NOT_FOUND'));
  await assert.rejects(s.put('../etc', data), code('KEY_INVALID'));
  assert.equal(s.puts, 2);
});

test('a checksum mismatch (also from the function form, read after the data) stores nothing', async () => {
  const s = createMemoryObjectStore();
  const data = new TextEncoder().encode('hello');
  let sent: string | undefined;
  async function* stream(): AsyncGenerator<Uint8Array> {
    yield await Promise.resolve(data);
    sent = sha(data);
  }
  assert.equal((await s.put('k/ok', stream(), { expectSha256: () => sent })).sha256, sha(data));
  await assert.rejects(s.put('k/bad', data, { expectSha256: 'f'.repeat(64) }), code('CHECKSUM_MISMATCH'));
  await assert.rejects(
    s.put('k/none', data, { expectSha256: () => undefined }),
    (e: unknown) => code('CHECKSUM_MISMATCH')(e) && /\(none sent\)/.test((e as Error).message),
  );
  assert.deepEqual(s.keys(), ['k/ok']);
});

test('failNext fails the next call as S3_ERROR; a failing input stream is S3_ERROR and stores nothing; ping answers false', async () => {
  const s = createMemoryObjectStore();
  s.failNext('put');
  await assert.rejects(
    s.put('k/a', new Uint8Array(1)),
    (e: unknown) => code('S3_ERROR')(e) && /k\/a: put failed: connect ECONNREFUSED/.test((e as Error).message),
  );
  await s.put('k/a', new Uint8Array(1));
  s.failNext('getBytes', new StorageError('NOT_FOUND', 'gone', 'k/a'));
  await assert.rejects(s.getBytes('k/a'), code('NOT_FOUND'));
  async function* broken(): AsyncGenerator<Uint8Array> {
    yield await Promise.resolve(new Uint8Array(1));
    throw new Error('client went away');
  }
  await assert.rejects(s.put('k/b', broken()), code('S3_ERROR'));
  assert.equal(s.object('k/b'), undefined);
  s.failNext('ping');
  assert.equal(await s.ping(), false);
  assert.equal(await s.ping(), true);
});
