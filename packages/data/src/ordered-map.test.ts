import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeShard, mapOrdered, shardChunksFrom } from './index.js';

test('mapOrdered keeps input order, never runs more than the limit at once, and throws the first failure', async () => {
  let running = 0;
  let most = 0;
  const fn = async (i: number): Promise<number> => {
    running++;
    most = Math.max(most, running);
    await sleep((7 * i) % 5);
    running--;
    if (i === 13) throw new Error('item 13 failed');
    return i * 2;
  };
  const got: number[] = [];
  for await (const r of mapOrdered(
    Array.from({ length: 12 }, (_, i) => i),
    3,
    fn,
  ))
    got.push(r);
  assert.deepEqual(
    got,
    Array.from({ length: 12 }, (_, i) => i * 2),
  );
  assert.equal(most, 3);
  const seen: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const r of mapOrdered(
        Array.from({ length: 20 }, (_, i) => i),
        4,
        fn,
      ))
        seen.push(r);
    })(),
    /item 13 failed/,
  );
  assert.equal(seen.length, 13, 'every result before the failure, in order');
  assert.equal(running, 0, 'no call outlives the generator');
});

test('shardChunksFrom streams a valid shard and refuses a record count other than the header', async () => {
  async function* records(n: number) {
    for (let i = 0; i < n; i++) {
      await sleep(0);
      yield { index: 10 + i, label: i % 3, pixels: new Uint8Array(12).fill(i) };
    }
  }
  const collect = async (n: number, count: number): Promise<Uint8Array> => {
    const parts: Uint8Array[] = [];
    for await (const c of shardChunksFrom({ height: 2, width: 2, channels: 3 }, count, { split: 'train' }, records(n), 40)) parts.push(c);
    return new Uint8Array(Buffer.concat(parts));
  };
  const shard = decodeShard(await collect(7, 7), 's');
  assert.equal(shard.set.count, 7);
  assert.deepEqual([...shard.indices], [10, 11, 12, 13, 14, 15, 16]);
  assert.deepEqual([...shard.set.labels], [0, 1, 2, 0, 1, 2, 0]);
  assert.equal(shard.set.images[6 * 12], 6);
  await assert.rejects(collect(5, 7), { code: 'SHARD_BAD_INDEX' });
  await assert.rejects(collect(8, 7), { code: 'SHARD_BAD_INDEX' });
});

test('a limit below 1 (or not a whole number) is a RangeError, not a silent map of nothing', async () => {
  for (const limit of [0, -1, 0.5, Number.NaN]) {
    await assert.rejects(
      (async () => {
        for await (const _ of mapOrdered([1, 2, 3], limit, (x) => Promise.resolve(x))) void _;
      })(),
      RangeError,
      String(limit),
    );
  }
});
