import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UploadSlots } from './grpc-server.js';

test('upload slots: at most `limit` at once, waiters get freed slots in order, the rest time out or are refused at once', async () => {
  const slots = new UploadSlots(2, 200, 1);
  assert.equal(await slots.acquire(), true);
  assert.equal(await slots.acquire(), true);
  assert.equal(slots.inUse, 2);
  const waiting = slots.acquire();
  assert.equal(await slots.acquire(), false, 'more waiters than allowed: refused at once');
  slots.release();
  assert.equal(await waiting, true, 'the freed slot went to the waiter');
  assert.equal(slots.inUse, 2);
  assert.equal(await slots.acquire(), false, 'no slot within 200 ms');
  slots.release();
  slots.release();
  assert.equal(slots.inUse, 0);
  assert.equal(await new UploadSlots(1, 0).acquire(), true);
});
