import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CvcError } from '@cvc/core';
import { createMemoryDocStore } from './index.js';

type Doc = { n: number; by: string[] };

test('create fails ALREADY_EXISTS; update on a missing key is NOT_FOUND; revisions increase', async () => {
  const s = createMemoryDocStore<Doc>();
  const r1 = await s.create('run.a', { n: 0, by: [] });
  await assert.rejects(
    s.create('run.a', { n: 1, by: [] }),
    (e: unknown) => e instanceof CvcError && e.code === 'ALREADY_EXISTS' && /run\.a already exists/.test(e.message),
  );
  await assert.rejects(
    s.update('run.none', (d) => d),
    (e: unknown) => e instanceof CvcError && e.code === 'NOT_FOUND',
  );
  const { revision } = await s.update('run.a', (d) => ({ ...d, n: 1 }));
  assert.ok(revision > r1);
  assert.deepEqual(await s.get('run.a'), { value: { n: 1, by: [] }, revision });
  assert.equal(await s.get('run.none'), undefined);
  assert.deepEqual(await s.keys(), ['run.a']);
});

test('concurrent updates race, conflict and are all applied', async () => {
  const s = createMemoryDocStore<Doc>();
  await s.create('k', { n: 0, by: [] });
  await Promise.all(Array.from({ length: 8 }, (_, i) => s.update('k', (d) => ({ n: d.n + 1, by: [...d.by, String(i)] }))));
  const v = await s.get('k');
  assert.equal(v?.value.n, 8);
  assert.equal(new Set(v?.value.by).size, 8);
  assert.ok(s.conflicts > 0, 'the updates really raced');
});

test('an injected conflicting write makes update re-read and re-apply its function', async () => {
  const s = createMemoryDocStore<Doc>();
  await s.create('k', { n: 0, by: [] });
  s.conflictOnce('k', (d) => ({ ...d, by: [...d.by, 'other'] }));
  let calls = 0;
  const out = await s.update('k', (d) => (calls++, { ...d, n: d.n + 1 }));
  assert.equal(calls, 2);
  assert.deepEqual(out.value, { n: 1, by: ['other'] });
  assert.equal(s.conflicts, 1);
});

test('values round-trip through JSON; watch sends the current value then each new one until stopped', async () => {
  const s = createMemoryDocStore<{ x: number | null; o?: number }>();
  await s.create('k', { x: NaN, o: undefined });
  assert.deepEqual((await s.get('k'))?.value, { x: null });
  const seen: (number | null)[] = [];
  const stop = await s.watch('k', (v) => seen.push(v.x));
  await s.update('k', () => ({ x: 2 }));
  await new Promise((r) => setImmediate(r));
  stop();
  await s.update('k', () => ({ x: 3 }));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, [null, 2]);
});

test('failNext throws the given error from the next call only', async () => {
  const s = createMemoryDocStore<Doc>();
  s.failNext('get', new Error('nats down'));
  await assert.rejects(s.get('k'), /nats down/);
  assert.equal(await s.get('k'), undefined);
});
