import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats, createTaskQueue, startNatsServer, type FoldTask, type NatsConnection, type NatsServer, type TaskQueue } from './index.js';

let dir: string;
let server: NatsServer;
let nc: NatsConnection;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cvc-given-up-'));
  server = await startNatsServer(join(dir, 'js'));
  nc = await connectNats(server.url);
});
after(async () => {
  await nc.close();
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !(await cond()); await pause(50)) if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
}

/** Delivers `task` until it exhausts max_deliver (1) while no onGivenUp handler runs, and waits until JetStream published the advisory. */
async function exhaust(q: TaskQueue, task: FoldTask): Promise<void> {
  let advisories = 0;
  const sub = nc.subscribe(q.maxDeliveriesSubject, { callback: () => void advisories++ });
  try {
    await q.enqueue(task);
    const d = await q.next();
    assert.deepEqual(d?.task, task);
    d?.nak();
    assert.equal(await q.next(1000), undefined, 'no second delivery');
    await until('the advisory', () => advisories === 1);
  } finally {
    sub.unsubscribe();
  }
}

const taskMessages = async (stream: string): Promise<number> => (await (await jetstreamManager(nc)).streams.info(stream)).state.messages;

test('a task that gave up while no handler ran is handed to a handler started afterwards, exactly once (real nats-server)', async () => {
  const q = await createTaskQueue(nc, { stream: 'G1', maxDeliver: 1 });
  await exhaust(q, { runId: 'r1', fold: 2 });
  assert.equal(await taskMessages('G1'), 1, 'the task message waits for the handler');

  const calls: [string, number, number][] = [];
  const errors: unknown[] = [];
  const stop = q.onGivenUp(
    (t, n) => Promise.resolve(void calls.push([t.runId, t.fold, n])),
    (e) => errors.push(e),
  );
  await until('the handler call', () => calls.length > 0);
  await until('the task message to be removed', async () => (await taskMessages('G1')) === 0);
  stop();
  // A coordinator that starts later (a restart) does not see it again: the advisory was acked.
  const again: unknown[] = [];
  const q2 = await createTaskQueue(nc, { stream: 'G1', maxDeliver: 1 });
  const stop2 = q2.onGivenUp((t) => Promise.resolve(void again.push(t)));
  await pause(1500);
  stop2();
  assert.deepEqual(calls, [['r1', 2, 1]]);
  assert.deepEqual(again, []);
  assert.deepEqual(errors, []);
});

test('two coordinators started after the give-up: one of them handles it, once', async () => {
  const q = await createTaskQueue(nc, { stream: 'G2', maxDeliver: 1 });
  await exhaust(q, { runId: 'r2', fold: 0, jobId: 'j2' });
  const other = await connectNats(server.url);
  try {
    const qa = await createTaskQueue(nc, { stream: 'G2', maxDeliver: 1 });
    const qb = await createTaskQueue(other, { stream: 'G2', maxDeliver: 1 });
    const calls: string[] = [];
    const stops = [
      qa.onGivenUp((t) => Promise.resolve(void calls.push(`a:${t.jobId}`))),
      qb.onGivenUp((t) => Promise.resolve(void calls.push(`b:${t.jobId}`))),
    ];
    await until('a handler call', () => calls.length > 0);
    await pause(1500);
    for (const s of stops) s();
    assert.equal(calls.length, 1, calls.join(', '));
    assert.match(calls[0] ?? '', /^[ab]:j2$/);
    assert.equal(await taskMessages('G2'), 0);
  } finally {
    await other.close();
  }
});

test('a handler that fails is reported and the give-up comes back later, until it succeeds', async () => {
  const q = await createTaskQueue(nc, { stream: 'G3', maxDeliver: 1 });
  await exhaust(q, { runId: 'r3', fold: 1 });
  let tries = 0;
  const errors: [unknown, FoldTask | undefined][] = [];
  const stop = q.onGivenUp(
    async () => {
      if (++tries === 1) throw new Error('KV write failed');
      await Promise.resolve();
    },
    (e, t) => errors.push([e, t]),
  );
  try {
    await until('the second try', () => tries >= 2);
    await until('the task message to be removed', async () => (await taskMessages('G3')) === 0);
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]?.[0]), /KV write failed/);
    assert.deepEqual(errors[0]?.[1], { runId: 'r3', fold: 1 });
    await pause(500);
    assert.equal(tries, 2, 'not handed out again once it succeeded');
  } finally {
    stop();
  }
});
