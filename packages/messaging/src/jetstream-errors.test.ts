import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JetStreamApiCodes, JetStreamApiError, JetStreamError, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { RequestError, TimeoutError } from '@nats-io/nats-core';
import { isConsumerNotFound, isNoMessageFound, isStreamNotFound, isWrongLastSequence } from './jetstream-errors.js';
import { isNatsUnavailable } from './availability.js';
import { MessagingError } from './errors.js';
import { connectNats, createDocStore, createTaskQueue, startNatsServer } from './index.js';

const apiError = (errCode: number, code: number, description: string): JetStreamApiError => new JetStreamApiError({ err_code: errCode, code, description });

test('JetStream conditions are recognised by the typed API error code, not by message text', () => {
  const cas = apiError(JetStreamApiCodes.StreamWrongLastSequence, 400, 'wrong last sequence: 7');
  assert.equal(isWrongLastSequence(cas), true);
  assert.equal(isWrongLastSequence(apiError(JetStreamApiCodes.StreamWrongLastSequenceUnknown, 400, 'wrong last sequence unknown')), true);
  // The same words in a plain Error, or another API code with those words, are not a CAS conflict.
  assert.equal(isWrongLastSequence(new Error('wrong last sequence: 7')), false);
  assert.equal(isWrongLastSequence(apiError(10999, 400, 'wrong last sequence')), false);
  assert.equal(isStreamNotFound(apiError(JetStreamApiCodes.StreamNotFound, 404, 'stream not found')), true);
  assert.equal(isStreamNotFound(new Error('stream not found')), false);
  assert.equal(isStreamNotFound(apiError(JetStreamApiCodes.ConsumerNotFound, 404, 'consumer not found')), false);
  assert.equal(isConsumerNotFound(apiError(JetStreamApiCodes.ConsumerNotFound, 404, 'consumer not found')), true);
  assert.equal(isConsumerNotFound(new TimeoutError()), false, 'a timeout is not "not found"');
  assert.equal(isNoMessageFound(apiError(JetStreamApiCodes.NoMessageFound, 404, 'no message found')), true);
});

test('NATS unavailability is recognised by type and JetStream code, following causes', () => {
  assert.equal(isNatsUnavailable(new TimeoutError()), true);
  assert.equal(isNatsUnavailable(new RequestError('connection disconnected')), true);
  assert.equal(isNatsUnavailable(apiError(10008, 503, 'JetStream system temporarily unavailable')), true);
  assert.equal(isNatsUnavailable(apiError(10118, 500, 'stream is offline')), true);
  // A pull request's 503 status: a JetStreamError with a numeric code.
  assert.equal(isNatsUnavailable(Object.assign(new JetStreamError('no responders'), { code: 503 })), true);
  assert.equal(isNatsUnavailable(new Error('wrapped', { cause: new TimeoutError() })), true, 'a cause chain is followed');
  // JetStream switched off for the account is a 503 too, but permanent.
  assert.equal(isNatsUnavailable(apiError(10039, 503, 'jetstream not enabled for account')), false);
  assert.equal(isNatsUnavailable(apiError(JetStreamApiCodes.StreamWrongLastSequence, 400, 'wrong last sequence: 1')), false);
  assert.equal(isNatsUnavailable(new Error('JetStream system temporarily unavailable')), false, 'message text is not read');
  assert.equal(isNatsUnavailable(undefined), false);
});

test("a real server's CAS conflict, existing key and missing stream/consumer arrive as the typed errors recognised here", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-nats-errors-'));
  const server = await startNatsServer(join(dir, 'js'));
  const nc = await connectNats(server.url);
  try {
    const kv = await new Kvm(nc).create('cvc_err_test', { history: 1 });
    const rev = await kv.create('k', 'v1');
    await kv.update('k', 'v2', rev);
    // A stale revision: exactly what DocStore.update re-reads and retries on.
    await assert.rejects(kv.update('k', 'v3', rev), (err: unknown) => isWrongLastSequence(err));
    await assert.rejects(kv.create('k', 'again'), (err: unknown) => isWrongLastSequence(err));
    const docs = await createDocStore<{ n: number }>(nc, 'cvc_err_docs');
    await docs.create('a', { n: 1 });
    await assert.rejects(docs.create('a', { n: 2 }), (err: unknown) => err instanceof MessagingError && err.code === 'ALREADY_EXISTS');
    await assert.rejects(
      docs.update('missing', (d) => d),
      (err: unknown) => err instanceof MessagingError && err.code === 'NOT_FOUND',
    );
    const jsm = await jetstreamManager(nc);
    await assert.rejects(jsm.streams.info('NO_SUCH_STREAM'), (err: unknown) => isStreamNotFound(err));
    // A fresh stream and consumer are created on the not-found path; opening them again finds both.
    await createTaskQueue(nc, { stream: 'ERRS' });
    await assert.rejects(jsm.consumers.info('ERRS', 'nobody'), (err: unknown) => isConsumerNotFound(err));
    const q = await createTaskQueue(nc, { stream: 'ERRS' });
    assert.deepEqual(await q.enqueue({ runId: 'r', fold: 0 }), { duplicate: false });
  } finally {
    await nc.close();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
