// Caps on open watch streams, and the server keepalive that ends the watches of a client that vanished.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { credentials, status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { FoldState, MESSAGE_SIZE_OPTIONS, Run, RunServiceClient, RunState, type RunEvent } from '@cvc/proto';
import { silentLogger } from '@cvc/core';
import { createMemoryDocStore, createMemoryObjectStore, createMemoryTaskQueue } from '@cvc/testkit';
import { Coordinator } from './coordinator.js';
import { bindServer, createGrpcServer } from './grpc-server.js';
import { runKey, type RunDoc } from './run-doc.js';
import { WatchSlots, watchClient } from './watch-slots.js';

const T = { timeout: 30_000 };

/** A gRPC server over in-memory stores holding one running run r1; keepalive as given. */
async function edge(watches: WatchSlots, keepalive: { keepaliveMs?: number; keepaliveTimeoutMs?: number } = {}) {
  const runs = createMemoryDocStore<RunDoc>();
  await runs.create(runKey('r1'), {
    run: Run.fromPartial({ id: 'r1', state: RunState.RUN_STATE_RUNNING, createdAtMs: 1, folds: [{ fold: 0, state: FoldState.FOLD_STATE_RUNNING }] }),
    tokens: ['t'],
  });
  const coordinator = new Coordinator({ store: createMemoryObjectStore(), queue: createMemoryTaskQueue(), runs, exportArtifacts: () => Promise.resolve('') });
  const server = createGrpcServer({ coordinator, logger: silentLogger, healthy: () => Promise.resolve(true), watches, ...keepalive });
  const port = await bindServer(server, '127.0.0.1', 0);
  return { port, close: () => server.forceShutdown() };
}

/** Opens a WatchRun of r1 and resolves with the stream once its first event came, or rejects with the stream's error. */
function openWatch(client: RunServiceClient): Promise<ClientReadableStream<RunEvent>> {
  return new Promise((resolve, reject) => {
    const s = client.watchRun({ runId: 'r1' });
    s.once('data', () => resolve(s));
    s.once('error', reject);
  });
}

/** Waits for `ok`, failing with `what` after 15 s (a guard against hanging, far over the expected time). */
async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 300 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(ok(), what);
}

test('WatchSlots: a cap per client and one in all, each named in its RESOURCE_EXHAUSTED; a release frees the slot once', () => {
  const w = new WatchSlots(2, 3);
  const a1 = w.take('a');
  w.take('a');
  assert.throws(
    () => w.take('a'),
    (e: Error & { outcome?: string }) => e.outcome === 'RESOURCE_EXHAUSTED' && /CVC_MAX_WATCHES_PER_CLIENT 2/.test(e.message),
  );
  w.take('b');
  assert.throws(
    () => w.take('c'),
    (e: Error & { outcome?: string }) => e.outcome === 'RESOURCE_EXHAUSTED' && /CVC_MAX_WATCHES 3/.test(e.message),
  );
  a1();
  a1();
  assert.equal(w.inUse, 2);
  w.take('c');
  assert.deepEqual([watchClient('127.0.0.1:5123'), watchClient('[::1]:40000')], ['127.0.0.1', '[::1]']);
  const [u1, u2] = [watchClient('10.0.0.1:1', 'Bearer one'), watchClient('10.0.0.1:2', 'Bearer two')];
  assert.notEqual(u1, u2, 'two tokens from one address count apart');
  assert.match(u1, /^10\.0\.0\.1 \(token sha256:[0-9a-f]{12}\)$/);
  assert.doesNotMatch(u1, /one/, 'the token itself is never named');
});

test('a client over its watch cap gets RESOURCE_EXHAUSTED naming the limit; a cancelled watch frees its slot', T, async () => {
  const watches = new WatchSlots(1, 10);
  const e = await edge(watches);
  const client = new RunServiceClient(`127.0.0.1:${e.port}`, credentials.createInsecure(), MESSAGE_SIZE_OPTIONS);
  try {
    const first = await openWatch(client);
    await assert.rejects(openWatch(client), (err: ServiceError) => err.code === status.RESOURCE_EXHAUSTED && /CVC_MAX_WATCHES_PER_CLIENT 1/.test(err.details));
    first.on('error', () => {});
    first.cancel();
    await until('the slot is free again', () => watches.inUse === 0);
    (await openWatch(client)).on('error', () => {}).cancel();
  } finally {
    client.close();
    e.close();
  }
});

test('the server keepalive ends the watch of a client whose connection went silent (a half-open connection) and frees its slot', T, async () => {
  const watches = new WatchSlots();
  const e = await edge(watches, { keepaliveMs: 1000, keepaliveTimeoutMs: 1000 });
  // A TCP relay that can stop forwarding without closing anything, as a vanished machine does.
  const sockets: Socket[] = [];
  const relay = createServer((down) => {
    const up = connect(e.port, '127.0.0.1');
    down.pipe(up);
    up.pipe(down);
    sockets.push(down, up);
    for (const s of [down, up]) s.on('error', () => {});
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  const port = (relay.address() as { port: number }).port;
  const client = new RunServiceClient(`127.0.0.1:${port}`, credentials.createInsecure(), MESSAGE_SIZE_OPTIONS);
  try {
    const w = await openWatch(client);
    w.on('error', () => {});
    assert.equal(watches.inUse, 1);
    const [down, up] = sockets as [Socket, Socket];
    down.unpipe(up);
    up.unpipe(down);
    down.pause();
    up.pause();
    await until('the server dropped the silent connection and its watch', () => watches.inUse === 0);
  } finally {
    client.close();
    for (const s of sockets) s.destroy();
    relay.close();
    e.close();
  }
});
