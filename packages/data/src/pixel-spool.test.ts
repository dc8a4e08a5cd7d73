import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPixelSpool } from './pixel-spool.js';

test('a pixel spool gives back every record by slot, across its write buffers, and leaves no file behind', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-spool-'));
  try {
    // 300 KiB records: a few per 1 MiB write buffer, so records straddle flushes.
    const recordBytes = 300 * 1024 + 7;
    const spool = await openPixelSpool(recordBytes, dir);
    const record = (i: number): Uint8Array => Uint8Array.from({ length: recordBytes }, (_, j) => (i * 31 + j) % 251);
    for (let i = 0; i < 11; i++) assert.equal(await spool.append(record(i)), i);
    // Appends are one at a time (the write buffer is reused): one made while a flush is pending is refused, not interleaved.
    const [flushing, overlapping] = await Promise.allSettled([spool.append(record(11)), spool.append(record(12))]);
    assert.deepEqual(flushing, { status: 'fulfilled', value: 11 });
    assert.ok(overlapping.status === 'rejected' && overlapping.reason instanceof RangeError);
    assert.equal(spool.count, 12);
    await spool.finish();
    for (const i of [10, 0, 3, 4, 7, 11]) assert.deepEqual(await spool.read(i), record(i), `slot ${i}`);
    await assert.rejects(spool.read(12), RangeError);
    await assert.rejects(spool.append(new Uint8Array(3)), { code: 'SHAPE_MISMATCH' });
    await spool.close();
    await spool.close();
    await assert.rejects(spool.read(0), RangeError);
    assert.deepEqual(await readdir(dir), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a spool that cannot be created names where it was to go', async () => {
  await assert.rejects(openPixelSpool(16, join(tmpdir(), 'cvc-no-such-dir', 'deeper')), (err: unknown) => {
    assert.equal((err as { code?: string }).code, 'FILE_UNREADABLE');
    assert.ok((err as Error).message.includes('cvc-no-such-dir'), (err as Error).message);
    return true;
  });
});
