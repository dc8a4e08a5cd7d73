import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMemoryTaskQueue } from './index.js';

test('tasks are deduplicated by (run, fold), delivered in order once, and acked', async () => {
  const q = createMemoryTaskQueue();
  assert.deepEqual(await q.enqueue({ runId: 'r1', fold: 0 }), { duplicate: false });
  assert.deepEqual(await q.enqueue({ runId: 'r1', fold: 1 }), { duplicate: false });
  assert.deepEqual(await q.enqueue({ runId: 'r1', fold: 0 }), { duplicate: true });
  assert.deepEqual(await q.depth(), { pending: 2, inFlight: 0 });
  const a = await q.next(1);
  const b = await q.next(1);
  assert.deepEqual([a?.task.fold, b?.task.fold], [0, 1]);
  assert.equal(a?.delivery, 1);
  assert.deepEqual(await q.depth(), { pending: 0, inFlight: 2 });
  a?.working();
  await a?.ack();
  await b?.ack();
  assert.equal(await q.next(1), undefined);
  assert.deepEqual(await q.depth(), { pending: 0, inFlight: 0 });
  assert.equal(q.record({ runId: 'r1', fold: 0 })?.heartbeats, 1);
  // Acked tasks stay in the duplicate window.
  assert.deepEqual(await q.enqueue({ runId: 'r1', fold: 1 }), { duplicate: true });
});

test('next() waits for a task published while it waits', async () => {
  const q = createMemoryTaskQueue();
  const waiting = q.next(5000);
  await q.enqueue({ runId: 'r', fold: 2 });
  assert.deepEqual((await waiting)?.task, { runId: 'r', fold: 2 });
});

test('a nak or an expired ack wait redelivers with a higher count; max_deliver calls onGivenUp once and removes the task', async () => {
  const q = createMemoryTaskQueue({ maxDeliver: 3 });
  const given: [string, number, number][] = [];
  q.onGivenUp((t, n) => Promise.resolve(void given.push([t.runId, t.fold, n])));
  await q.enqueue({ runId: 'r2', fold: 3 });
  const first = await q.next(1);
  first?.nak();
  const second = await q.next(1);
  assert.equal(second?.delivery, 2);
  first?.nak(); // a stale delivery's nak changes nothing
  assert.deepEqual(await q.depth(), { pending: 0, inFlight: 1 });
  assert.equal(q.expireInFlight(), 1);
  const third = await q.next(1);
  assert.equal(third?.delivery, 3);
  assert.equal(q.expireInFlight(), 1);
  assert.equal(await q.next(1), undefined, 'no fourth delivery');
  await q.settled();
  assert.deepEqual(given, [['r2', 3, 3]]);
  assert.equal(q.record({ runId: 'r2', fold: 3 })?.state, 'given-up');
  assert.deepEqual(await q.depth(), { pending: 0, inFlight: 0 });
});

test('term() ends a task without redelivery or give-up; a stopped onGivenUp handler is not called', async () => {
  const q = createMemoryTaskQueue({ maxDeliver: 1 });
  let calls = 0;
  const stop = q.onGivenUp(() => Promise.resolve(void calls++));
  await q.enqueue({ runId: 'r', fold: 0 });
  await q.enqueue({ runId: 'r', fold: 1 });
  (await q.next(1))?.term('bad task');
  assert.equal(q.record({ runId: 'r', fold: 0 })?.termReason, 'bad task');
  stop();
  await q.next(1);
  q.expireInFlight();
  await q.settled();
  assert.equal(calls, 0);
  assert.equal(await q.next(1), undefined);
  assert.deepEqual(
    q.records().map((r) => r.state),
    ['termed', 'given-up'],
  );
});

test("a clustering job's task keeps its jobId and is deduplicated by job, apart from its source fold's task", async () => {
  const q = createMemoryTaskQueue();
  assert.deepEqual(await q.enqueue({ runId: 'r', fold: 1 }), { duplicate: false });
  assert.deepEqual(await q.enqueue({ runId: 'r', fold: 1, jobId: 'j1' }), { duplicate: false });
  assert.deepEqual(await q.enqueue({ runId: 'r', fold: 1, jobId: 'j1' }), { duplicate: true });
  await (await q.next(1))?.ack();
  assert.deepEqual((await q.next(1))?.task, { runId: 'r', fold: 1, jobId: 'j1' });
});
