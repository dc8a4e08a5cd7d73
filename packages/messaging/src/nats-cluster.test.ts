import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import {
  connectNats,
  createDocStore,
  createTaskQueue,
  isNatsUnavailable,
  NatsReplicasError,
  startNatsCluster,
  startNatsServer,
  type NatsCluster,
  type NatsConnection,
} from './index.js';

let dir: string;
let cluster: NatsCluster;
let nc: NatsConnection;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cvc-nats-cluster-'));
  cluster = await startNatsCluster(join(dir, 'cluster'), { nodes: 3, user: 'u', pass: 'p' });
  nc = await connectNats(cluster.url, { user: 'u', pass: 'p' });
});
after(async () => {
  await nc.close();
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Retries `fn` while NATS is unavailable (a leader election after a kill), for at most 30 s. */
/** `read()` until it gives `want` or 10 s pass; the last value read. */
async function settled<T>(read: () => Promise<T>, want: T): Promise<T> {
  const end = Date.now() + 10_000;
  for (;;) {
    const v = await read();
    if (v === want || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function retrying<T>(fn: () => Promise<T>): Promise<T> {
  const end = Date.now() + 30_000;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isNatsUnavailable(err) || Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

test('3 routed nodes elect a JetStream meta leader; the client URL lists all of them', async () => {
  assert.deepEqual(
    cluster.nodes.map((n) => n.name),
    ['n0', 'n1', 'n2'],
  );
  assert.equal(cluster.url.split(',').length, 3);
  const leader = await cluster.metaLeader();
  assert.ok(leader && ['n0', 'n1', 'n2'].includes(leader), `meta leader ${leader}`);
  assert.ok(nc.info?.cluster === 'cvc');
});

test('an R3 KV bucket keeps its documents and compare-and-set when the node leading it is SIGKILLed', async () => {
  const docs = await createDocStore<{ n: number }>(nc, 'cvc_ha', { replicas: 3 });
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info('KV_cvc_ha');
  assert.equal(info.config.num_replicas, 3);
  await docs.create('k', { n: 1 });
  const stale = await docs.get('k');
  const leader = cluster.nodes.find((n) => n.name === info.cluster?.leader);
  assert.ok(leader, `the bucket's leader ${info.cluster?.leader} is one of the nodes`);
  await leader.kill();
  const after = await retrying(() => docs.update('k', (d) => ({ n: d.n + 1 })));
  assert.deepEqual(after.value, { n: 2 }, 'the document written before the kill was kept, and updated once');
  assert.deepEqual((await docs.get('k'))?.value, { n: 2 });
  // A write at the revision read before the kill is refused: compare-and-set still holds.
  const kv = await new Kvm(nc).open('cvc_ha');
  await assert.rejects(kv.update('k', JSON.stringify({ n: 99 }), stale?.revision ?? 0));
  assert.deepEqual((await docs.get('k'))?.value, { n: 2 });
  await leader.start();
  assert.ok(await leader.healthy(), `${leader.name} caught up after its restart`);
});

test('a task stream created with 1 copy is raised to the setting; more copies than servers are refused by name', async () => {
  await createTaskQueue(nc, { stream: 'HA_T1', replicas: 1 });
  const q = await createTaskQueue(nc, { stream: 'HA_T1', replicas: 3 });
  const jsm = await jetstreamManager(nc);
  assert.equal((await jsm.streams.info('HA_T1')).config.num_replicas, 3);
  // A consumer's scale-up goes through the meta leader: its info may show the old count for a moment on a loaded machine.
  assert.equal(await settled(async () => (await jsm.consumers.info('HA_T1', 'workers')).config.num_replicas, 3), 3);
  await q.enqueue({ runId: 'r', fold: 0 });
  assert.deepEqual((await q.next())?.task, { runId: 'r', fold: 0 });
  await assert.rejects(
    createTaskQueue(nc, { stream: 'HA_T2', replicas: 5 }),
    (e: unknown) => e instanceof NatsReplicasError && e.replicas === 5 && /HA_T2/.test(e.message),
  );
  const single = await startNatsServer(join(dir, 'single'));
  const c = await connectNats(single.url);
  try {
    await assert.rejects(createDocStore(c, 'cvc_r3', { replicas: 3 }), (e: unknown) => e instanceof NatsReplicasError && /not clustered/.test(e.message));
  } finally {
    await c.close();
    await single.stop();
  }
});
