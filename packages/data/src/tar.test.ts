import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataError, readTar } from './index.js';
import { encodeTar } from './testing.js';

const enc = new TextEncoder();
const tarCorrupt = (re: RegExp) => (e: unknown) => e instanceof DataError && e.code === 'TAR_CORRUPT' && re.test(e.message);

/** Rewrites a header's checksum after an edit, as a tar writer would. */
function reseal(tar: Uint8Array, at: number): void {
  const h = tar.subarray(at, at + 512);
  h.fill(0x20, 148, 156);
  const sum = h.reduce((a, b) => a + b, 0);
  h.set(enc.encode(sum.toString(8).padStart(6, '0') + '\0 '), 148);
}

test('tar headers are checked: a damaged header (checksum) and a size field that is not octal are TAR_CORRUPT naming the offset, never a wrong entry', () => {
  const files = [
    { name: 'cifar-10-batches-bin/data_batch_1.bin', data: new Uint8Array(1000).fill(7) },
    { name: 'b.txt', data: enc.encode('hello') },
  ];
  const good = encodeTar(files);
  assert.deepEqual(
    readTar(good, 'a.tar').map((e) => [e.name, e.data.length]),
    files.map((f) => [f.name, f.data.length]),
  );

  // One flipped bit in a name: before, the entry came out under another name.
  const flipped = Uint8Array.from(good);
  flipped[3] = (flipped[3] as number) ^ 0x01;
  assert.throws(() => readTar(flipped, 'a.tar'), tarCorrupt(/checksum.*offset 0/));

  // A size field with a non-octal digit (checksum made to match): before, parseInt read its prefix, a wrong size.
  const garbled = Uint8Array.from(good);
  garbled.set(enc.encode('0000000176x\0'), 124);
  reseal(garbled, 0);
  assert.throws(() => readTar(garbled, 'a.tar'), tarCorrupt(/size field.*offset 0/));
});
