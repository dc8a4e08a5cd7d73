import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats, createDocStore, createTaskQueue, MessagingError, startNatsServer, type NatsConnection, type NatsServer } from './index.js';

let dir: string;
let server: NatsServer;
let nc: NatsConnection;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cvc-nats-'));
  server = await startNatsServer(join(dir, 'js'));
  nc = await connectNats(server.url);
});
after(async () => {
  await nc.close();
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

test('tasks are deduplicated by (run, fold), delivered once, and acked (real nats-server)', async () => {
  const q = await createTaskQueue(nc, { stream: 'T1', ackWaitMs: 30_000 });
  assert.deepEqual(await q.enqueue({ runId: 'r1', fold: 0 }), { duplicate: false });
  assert.deepEqual(await q.enqueue({ runId: 'r1', fold: 1 }), { duplicate: false });
  assert.deepEqual(await q.enqueue({ runId: 'r1', fold: 0 }), { duplicate: true });
  assert.deepEqual(await q.depth(), { pending: 2, inFlight: 0 });
  const a = await q.next();
  const b = await q.next();
  assert.ok(a && b);
  assert.deepEqual([a.task.fold, b.task.fold].sort(), [0, 1]);
  assert.equal(a.delivery, 1);
  assert.deepEqual(await q.depth(), { pending: 0, inFlight: 2 });
  a.working();
  await a.ack();
  await b.ack();
  assert.equal(await q.next(1000), undefined);
  assert.deepEqual(await q.depth(), { pending: 0, inFlight: 0 });
});

test("a worker's queue (adopt) takes the coordinator's ack_wait and max_deliver and leaves the consumer as it is; without a consumer it creates one", async () => {
  const owner = await createTaskQueue(nc, { stream: 'T_ADOPT', ackWaitMs: 45_000, maxDeliver: 4 });
  const worker = await createTaskQueue(nc, { stream: 'T_ADOPT', ackWaitMs: 5000, maxDeliver: 9, adopt: true });
  assert.equal(worker.ackWaitMs, 45_000);
  assert.equal(worker.maxDeliver, 4);
  assert.equal(owner.ackWaitMs, 45_000);
  const jsm = await jetstreamManager(nc);
  const info = await jsm.consumers.info('T_ADOPT', 'workers');
  assert.equal(info.config.ack_wait, 45_000 * 1e6, 'the consumer keeps the owner ack_wait');
  assert.equal(info.config.max_deliver, 4);
  assert.ok(await worker.enqueue({ runId: 'r-adopt', fold: 0 }));
  const d = await worker.next();
  assert.equal(d?.maxDeliver, 4);
  await d?.ack();
  // The first to start creates the consumer, with its own values; a coordinator started later sets its own.
  const first = await createTaskQueue(nc, { stream: 'T_ADOPT2', ackWaitMs: 7000, maxDeliver: 3, adopt: true });
  assert.equal(first.ackWaitMs, 7000);
  assert.equal((await jsm.consumers.info('T_ADOPT2', 'workers')).config.max_deliver, 3);
  await createTaskQueue(nc, { stream: 'T_ADOPT2', ackWaitMs: 60_000, maxDeliver: 5 });
  assert.equal((await jsm.consumers.info('T_ADOPT2', 'workers')).config.max_deliver, 5);
});

test('a nak redelivers with a higher delivery count; max_deliver ends with an advisory', async () => {
  const q = await createTaskQueue(nc, { stream: 'T2', maxDeliver: 2 });
  const advisories: unknown[] = [];
  const sub = nc.subscribe(q.maxDeliveriesSubject, { callback: (_e, m) => void advisories.push(m.json()) });
  await q.enqueue({ runId: 'r2', fold: 3 });
  const first = await q.next();
  assert.equal(first?.delivery, 1);
  first?.nak();
  const second = await q.next();
  assert.equal(second?.delivery, 2);
  assert.deepEqual(second?.task, { runId: 'r2', fold: 3 });
  second?.nak();
  assert.equal(await q.next(1500), undefined, 'no third delivery');
  await nc.flush();
  for (let i = 0; i < 50 && advisories.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(advisories.length, 1);
  sub.unsubscribe();
});

test('documents update with compare-and-set; concurrent updates are all applied', async () => {
  const store = await createDocStore<{ n: number; by: string[] }>(nc, 'cvc_test_docs');
  await store.create('run.a', { n: 0, by: [] });
  await assert.rejects(store.create('run.a', { n: 1, by: [] }), /already exists/);
  await Promise.all(Array.from({ length: 8 }, (_, i) => store.update('run.a', (d) => ({ n: d.n + 1, by: [...d.by, String(i)] }))));
  const v = await store.get('run.a');
  assert.equal(v?.value.n, 8);
  assert.equal(new Set(v?.value.by).size, 8);
  assert.deepEqual(await store.keys(), ['run.a']);
  assert.equal(await store.get('run.none'), undefined);
  await assert.rejects(
    store.update('run.none', (d) => d),
    /does not exist/,
  );
  const seen: number[] = [];
  const stop = await store.watch('run.a', (d) => seen.push(d.n));
  await store.update('run.a', (d) => ({ ...d, n: 100 }));
  for (let i = 0; i < 50 && !seen.includes(100); i++) await new Promise((r) => setTimeout(r, 50));
  stop();
  assert.ok(seen.includes(100));
});

test('a document over the server max_payload is refused with TOO_LARGE (not retried), and the stored one is kept', async () => {
  const store = await createDocStore<{ pad: string }>(nc, 'cvc_test_big');
  const max = nc.info?.max_payload ?? 0;
  assert.ok(max > 0, 'the server announces its max_payload');
  await store.create('sweep.a', { pad: 'small' });
  const tooBig = { pad: 'x'.repeat(max) };
  await assert.rejects(
    store.create('sweep.b', tooBig),
    (err: unknown) => err instanceof MessagingError && err.code === 'TOO_LARGE' && err.message.includes(`max_payload of ${max} bytes`),
  );
  await assert.rejects(
    store.update('sweep.a', () => tooBig),
    (err: unknown) => err instanceof MessagingError && err.code === 'TOO_LARGE' && err.message.startsWith('sweep.a: a value of '),
  );
  assert.deepEqual((await store.get('sweep.a'))?.value, { pad: 'small' });
});

test('state survives a nats-server restart on the same JetStream directory', async () => {
  const d = join(dir, 'restart');
  const s1 = await startNatsServer(d);
  let c = await connectNats(s1.url);
  let q = await createTaskQueue(c, { stream: 'T3' });
  await q.enqueue({ runId: 'r3', fold: 0 });
  const docs = await createDocStore<{ v: number }>(c, 'cvc_restart');
  await docs.create('k', { v: 7 });
  await c.close();
  await s1.stop();
  const s2 = await startNatsServer(d, { port: s1.port });
  c = await connectNats(s2.url);
  q = await createTaskQueue(c, { stream: 'T3' });
  assert.deepEqual((await q.next())?.task, { runId: 'r3', fold: 0 });
  assert.deepEqual((await (await createDocStore<{ v: number }>(c, 'cvc_restart')).get('k'))?.value, { v: 7 });
  await c.close();
  await s2.stop();
});
