import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Chunk } from '@cvc/proto';
import { writeChunks } from './grpc-streams.js';

/** A server stream whose buffer is always full: every write asks the writer to wait for 'drain'. */
class SlowClient extends EventEmitter {
  readonly written: Chunk[] = [];
  cancelled = false;
  write(c: Chunk): boolean {
    this.written.push(c);
    return false;
  }
}

test('writeChunks waits for the client to drain before it reads more of the object, and stops when the client goes away', async () => {
  let pulled = 0;
  async function* object(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < 100; i++) {
      pulled++;
      yield await Promise.resolve(new Uint8Array(16).fill(i));
    }
  }
  const client = new SlowClient();
  const done = writeChunks(client, 1600, object());
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(client.written.length, 1, 'one chunk buffered until the client drains');
  assert.equal(pulled, 1);
  client.emit('drain');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(client.written.length, 2);
  assert.equal(pulled, 2);
  client.emit('cancelled');
  await assert.rejects(done, /the download was cancelled by the client/);
  assert.equal(pulled, 2, 'nothing more read from storage');
});

test('writeChunks stops when the client went away before it waited (no cancelled event comes again)', { timeout: 5000 }, async () => {
  async function* object(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < 10; i++) yield await Promise.resolve(new Uint8Array(16).fill(i));
  }
  const client = new SlowClient();
  client.cancelled = true;
  await assert.rejects(writeChunks(client, 160, object()), /the download was cancelled by the client/);
  assert.equal(client.written.length, 1);
});
