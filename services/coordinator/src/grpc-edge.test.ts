// The gRPC edge (createGrpcServer) over the in-memory stores (@cvc/testkit), on
// loopback without TLS: what only the server adds to the coordinator (message
// limits, upload streams).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import {
  CheckpointKind,
  FoldState,
  MESSAGE_SIZE_OPTIONS,
  Run,
  RunServiceClient,
  RunState,
  WorkerServiceClient,
  type AttemptRef,
  type Chunk,
  type ListRunsResponse,
  type UploadCheckpointResponse,
} from '@cvc/proto';
import { silentLogger } from '@cvc/core';
import { createMemoryDocStore, createMemoryObjectStore, createMemoryTaskQueue } from '@cvc/testkit';
import { Coordinator } from './coordinator.js';
import { bindServer, createGrpcServer, type GrpcServerOptions } from './grpc-server.js';
import { runKey, type RunDoc } from './run-doc.js';

type Cb<T> = (e: ServiceError | null, r: T) => void;
const call = <T>(f: (cb: Cb<T>) => unknown): Promise<T> => new Promise((res, rej) => void f((e, r) => (e ? rej(e) : res(r))));

/** A running fold's run document (one fold per run unless `folds` says otherwise), its attempts holding token `tok`. */
function runningDoc(id: string, opts: { folds?: number; epochs?: number; createdAtMs?: number } = {}): RunDoc {
  const folds = opts.folds ?? 1;
  const history = Array.from({ length: opts.epochs ?? 0 }, (_, i) => ({
    epoch: i + 1,
    loss: 0.1234567890123 + i,
    valLoss: 0.2234567890123 + i,
    valMse: 0.0123456789012,
    valCosine: 0.9123456789012,
    seconds: 12.345678901234,
    imagesPerSec: 1234.5678901234,
  }));
  const run = Run.fromPartial({
    id,
    state: RunState.RUN_STATE_RUNNING,
    spec: { dataset: 'd', model: 'seed-mnist', folds, epochs: Math.max(1, opts.epochs ?? 1) },
    datasetVersion: 'v1',
    createdAtMs: opts.createdAtMs ?? 1,
    folds: Array.from({ length: folds }, (_, fold) => ({ fold, state: FoldState.FOLD_STATE_RUNNING, attempts: 1, worker: 'w', history })),
  });
  return { run, tokens: Array.from({ length: folds }, () => 'tok') };
}

async function edge(over: Partial<GrpcServerOptions> = {}, maxCheckpointBytes?: number) {
  const runs = createMemoryDocStore<RunDoc>();
  const store = createMemoryObjectStore();
  const coordinator = new Coordinator({
    store,
    queue: createMemoryTaskQueue({ maxDeliver: 3 }),
    runs,
    exportArtifacts: () => Promise.resolve(''),
    ...(maxCheckpointBytes ? { maxCheckpointBytes } : {}),
  });
  const server = createGrpcServer({ coordinator, logger: silentLogger, healthy: () => Promise.resolve(true), ...over });
  const port = await bindServer(server, '127.0.0.1', 0);
  const addr = `127.0.0.1:${port}`;
  const rc = new RunServiceClient(addr, credentials.createInsecure(), MESSAGE_SIZE_OPTIONS);
  const wc = new WorkerServiceClient(addr, credentials.createInsecure(), MESSAGE_SIZE_OPTIONS);
  return {
    runs,
    store,
    rc,
    wc,
    close: async () => {
      rc.close();
      wc.close();
      server.forceShutdown();
      await coordinator.close();
    },
  };
}

test('ListRuns answers with every run, without fold histories, when the runs together are far over one gRPC message', async () => {
  const e = await edge();
  try {
    // 60 runs of 5 folds x 400 epochs: about 140 KB each with their histories as protobuf, 8 MB in all (the limit is 4 MiB).
    for (let i = 0; i < 60; i++) await e.runs.create(runKey(`r${i}`), runningDoc(`r${i}`, { folds: 5, epochs: 400, createdAtMs: 1000 + i }));
    const { runs } = await call<ListRunsResponse>((cb) => e.rc.listRuns({ pageSize: 0, pageToken: '' }, cb));
    assert.equal(runs.length, 60);
    assert.deepEqual(
      runs.map((r) => r.id),
      Array.from({ length: 60 }, (_, i) => `r${59 - i}`),
      'newest first',
    );
    assert.ok(
      runs.every((r) => r.folds.length === 5 && r.folds.every((f) => f.history.length === 0)),
      'folds listed without their histories',
    );
    // GetRun still has the whole run.
    const one = await call<Run>((cb) => e.rc.getRun({ runId: 'r7' }, cb));
    assert.equal(one.folds[0]?.history.length, 400);
  } finally {
    await e.close();
  }
});

test('ListRuns pages newest first; a run submitted between pages shifts no later page; the last page has no token', async () => {
  const e = await edge();
  try {
    // r2 and r3 share a creation time: the id breaks the tie.
    for (const [id, at] of [
      ['r0', 1000],
      ['r1', 1001],
      ['r2', 1002],
      ['r3', 1002],
      ['r4', 1004],
      ['r5', 1005],
      ['r6', 1006],
    ] as const)
      await e.runs.create(runKey(id), runningDoc(id, { createdAtMs: at }));
    const page = (pageToken: string) => call<ListRunsResponse>((cb) => e.rc.listRuns({ pageSize: 3, pageToken }, cb));
    const p1 = await page('');
    assert.deepEqual([p1.runs.map((r) => r.id), p1.remaining], [['r6', 'r5', 'r4'], 4]);
    assert.notEqual(p1.nextPageToken, '');
    await e.runs.create(runKey('new'), runningDoc('new', { createdAtMs: 9999 }));
    const p2 = await page(p1.nextPageToken);
    assert.deepEqual([p2.runs.map((r) => r.id), p2.remaining], [['r3', 'r2', 'r1'], 1]);
    const p3 = await page(p2.nextPageToken);
    assert.deepEqual([p3.runs.map((r) => r.id), p3.remaining, p3.nextPageToken], [['r0'], 0, '']);
    // A client that does not page gets every run, as before paging.
    const all = await call<ListRunsResponse>((cb) => e.rc.listRuns({ pageSize: 0, pageToken: '' }, cb));
    assert.deepEqual([all.runs.length, all.nextPageToken], [8, '']);
  } finally {
    await e.close();
  }
});

test('ListRuns refuses a page_token it did not make (INVALID_ARGUMENT naming page_token); page_size 0 with a token is 50, a huge one 1000', async () => {
  const e = await edge();
  try {
    for (let i = 0; i < 1002; i++) await e.runs.create(runKey(`r${i}`), runningDoc(`r${i}`, { createdAtMs: 1000 + i }));
    for (const pageToken of ['garbage', `p1.${Buffer.from('12:').toString('base64url')}`])
      await assert.rejects(
        call((cb) => e.rc.listRuns({ pageSize: 3, pageToken }, cb)),
        (err: ServiceError) => err.code === status.INVALID_ARGUMENT && /page_token/.test(err.details),
      );
    const first = await call<ListRunsResponse>((cb) => e.rc.listRuns({ pageSize: 1, pageToken: '' }, cb));
    const zero = await call<ListRunsResponse>((cb) => e.rc.listRuns({ pageSize: 0, pageToken: first.nextPageToken }, cb));
    assert.deepEqual([zero.runs.length, zero.runs[0]?.id, zero.remaining], [50, 'r1000', 1001 - 50]);
    const huge = await call<ListRunsResponse>((cb) => e.rc.listRuns({ pageSize: 4_294_967_295, pageToken: '' }, cb));
    assert.deepEqual([huge.runs.length, huge.remaining], [1000, 2]);
  } finally {
    await e.close();
  }
});

test('ListRuns of more runs than fit in one message even without histories lists the newest that fit', async () => {
  const { listing } = await import('./run-list.js');
  const docs = Array.from({ length: 10 }, (_, i) => runningDoc(`r${i}`, { epochs: 50 }).run);
  const one = Run.encode({ ...docs[0]!, folds: docs[0]!.folds.map((f) => ({ ...f, history: [] })) }).finish().length + 6;
  const out = listing(docs, one * 3 + 1);
  assert.deepEqual(
    out.runs.map((r) => r.id),
    ['r0', 'r1', 'r2'],
  );
  assert.equal(out.omitted, 7);
});

/** Opens an upload, sends its header and `data` (no sha, no end): the worker then goes silent. */
function stalledUpload(wc: WorkerServiceClient, a: AttemptRef, data: Buffer): Promise<UploadCheckpointResponse> {
  return new Promise((resolve, reject) => {
    const s = wc.uploadCheckpoint((err, r) => (err ? reject(err) : resolve(r)));
    s.on('error', () => {});
    s.write({ header: { attempt: a, epoch: 1, kind: CheckpointKind.CHECKPOINT_KIND_EPOCH, size: data.length * 2 }, data, sha256: '' });
  });
}

function upload(wc: WorkerServiceClient, a: AttemptRef, data: Buffer, size = data.length, epoch = 1): Promise<UploadCheckpointResponse> {
  return new Promise((resolve, reject) => {
    const s = wc.uploadCheckpoint((err, r) => (err ? reject(err) : resolve(r)));
    s.on('error', () => {});
    s.write({ header: { attempt: a, epoch, kind: CheckpointKind.CHECKPOINT_KIND_EPOCH, size }, data, sha256: '' });
    s.write({ data: Buffer.alloc(0), sha256: createHash('sha256').update(data).digest('hex') });
    s.end();
  });
}

test('an upload whose worker goes silent is dropped with DEADLINE_EXCEEDED naming the run and fold, and frees its slot', { timeout: 20_000 }, async () => {
  // One slot and no queue: while the silent upload held it, every other upload would be refused.
  const e = await edge({ maxConcurrentUploads: 1, uploadQueueMs: 0, uploadIdleMs: 300 });
  try {
    await e.runs.create(runKey('r'), runningDoc('r'));
    const a: AttemptRef = { runId: 'r', fold: 0, token: 'tok', jobId: '' };
    await assert.rejects(
      stalledUpload(e.wc, a, Buffer.from('half a checkpoint')),
      (err: ServiceError) => err.code === status.DEADLINE_EXCEEDED && /run r fold 0 sent nothing for 300 ms/.test(err.details),
    );
    assert.deepEqual(await e.store.list('runs/r/'), [], 'nothing stored');
    const r = await upload(e.wc, a, Buffer.from('a whole checkpoint'));
    assert.equal(r.key, 'runs/r/fold-0/checkpoints/epoch-0001.ckpt');
  } finally {
    await e.close();
  }
});

test('an upload that announces no size and streams past the checkpoint limit is RESOURCE_EXHAUSTED (not INTERNAL)', async () => {
  const e = await edge({}, 16);
  try {
    await e.runs.create(runKey('r'), runningDoc('r'));
    const a: AttemptRef = { runId: 'r', fold: 0, token: 'tok', jobId: '' };
    await assert.rejects(
      upload(e.wc, a, Buffer.alloc(64, 7), 0),
      (err: ServiceError) => err.code === status.RESOURCE_EXHAUSTED && /^checkpoint exceeds the limit of 16 bytes$/.test(err.details),
    );
    assert.equal((await call<Run>((cb) => e.rc.getRun({ runId: 'r' }, cb))).folds[0]?.lastCheckpoint, '', 'nothing recorded');
  } finally {
    await e.close();
  }
});

test('reports, uploads and starts that would grow a run document past its size bound are refused, naming the field', async () => {
  const e = await edge();
  try {
    // Two epochs: the run document was sized at submit for two history records per fold.
    await e.runs.create(runKey('r'), runningDoc('r', { epochs: 2 }));
    const attempt: AttemptRef = { runId: 'r', fold: 0, token: 'tok', jobId: '' };
    const metrics = { epoch: 3, loss: 0.5, valLoss: 0.5, valMse: 0.1, seconds: 1, imagesPerSec: 10 };
    const invalid = (re: RegExp) => (err: ServiceError) => err.code === status.INVALID_ARGUMENT && re.test(err.details);
    await assert.rejects(
      call((cb) => e.wc.reportEpoch({ attempt, metrics }, cb)),
      invalid(/epoch 3 is past the 2 epochs of run r/),
    );
    await assert.rejects(
      call((cb) => e.wc.reportEpoch({ attempt, metrics: { ...metrics, epoch: 2, seconds: NaN } }, cb)),
      invalid(/seconds must be a finite number >= 0, got NaN/),
    );
    await assert.rejects(upload(e.wc, attempt, Buffer.from('ckpt'), 4, 1000), invalid(/epoch 1000 is not one of the epochs 1\.\.2 of run r/));
    await assert.rejects(
      call((cb) => e.wc.startAttempt({ runId: 'r', fold: 0, worker: 'w'.repeat(10_000), delivery: 2 }, cb)),
      invalid(/worker name must be at most 256 bytes, got 10000/),
    );
    const run = await call<Run>((cb) => e.rc.getRun({ runId: 'r' }, cb));
    assert.deepEqual(
      run.folds[0]?.history.map((h) => h.epoch),
      [1, 2],
      'no record past the spec',
    );
    assert.equal(run.folds[0]?.lastCheckpoint, '');
    assert.equal(run.folds[0]?.worker, 'w');
    // An epoch in range is still taken.
    assert.deepEqual(await call((cb) => e.wc.reportEpoch({ attempt, metrics: { ...metrics, epoch: 2 } }, cb)), { stop: false, reason: '' });
  } finally {
    await e.close();
  }
});

test('DownloadCheckpoint streams a best checkpoint of several chunks whole, with its size and sha256', async () => {
  const e = await edge();
  try {
    const doc = runningDoc('r');
    const key = 'runs/r/fold-0/best.ckpt';
    await e.runs.create(runKey('r'), { ...doc, run: { ...doc.run, folds: doc.run.folds.map((f) => ({ ...f, bestCheckpoint: key })) } });
    const data = Buffer.alloc(20 * 1024 * 1024 + 5, 3);
    await e.store.put(key, data);
    const chunks: Chunk[] = [];
    await new Promise<void>((resolve, reject) => {
      const s = e.rc.downloadCheckpoint({ runId: 'r', fold: 0 });
      s.on('data', (c: Chunk) => chunks.push(c));
      s.on('error', reject);
      s.on('end', resolve);
    });
    const got = Buffer.concat(chunks.map((c) => c.data));
    assert.equal(chunks[0]?.size, data.length);
    assert.ok(got.equals(data));
    assert.equal(chunks.at(-1)?.sha256, createHash('sha256').update(data).digest('hex'));
  } finally {
    await e.close();
  }
});
