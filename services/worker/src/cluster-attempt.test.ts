// Unit tests of a clustering job's attempt on the worker: the memory task
// queue and object store of @cvc/testkit, a real tiny imported dataset, fake
// coordinator services and a fake fine-tune; no servers, no TensorFlow.js.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { CancelledError, silentLogger, throwIfAborted } from '@cvc/core';
import { importDataset, type Dataset } from '@cvc/data';
import { tinyDataset } from '@cvc/data/testing';
import { decodeCheckpoint, encodeCheckpoint, ModelError, resolveTrainConfig, type TrainingState } from '@cvc/model';
import {
  CheckpointKind,
  ClusterJob,
  ClusterJobState,
  type Ack,
  type AttemptRef,
  type ClusterJobProgress,
  type EpochMetrics,
  type FailFoldRequest,
  type FinishClusterJobRequest,
  type FinishFoldRequest,
  type FoldProgress,
  type ReportBadCheckpointRequest,
  type ReportBadCheckpointResponse,
  type StartAttemptRequest,
  type StartAttemptResponse,
  type StartClusterAttemptRequest,
  type StartClusterAttemptResponse,
} from '@cvc/proto';
import { createMemoryObjectStore, createMemoryTaskQueue, type MemoryObjectStore, type MemoryTaskQueue } from '@cvc/testkit';
import type { ClusterCoordinatorApi } from './cluster-api.js';
import { runClusterAttempt, type ClusterAttemptDeps } from './cluster-attempt.js';
import type { CoordinatorApi } from './coordinator-api.js';
import type { FineTuneFn, FineTuneOptions } from './fine-tune.js';
import { ShardCache } from './shards.js';
import { Worker } from './worker.js';

let cacheDir: string;
let store: MemoryObjectStore;
let manifestKey: string;
let source: TrainingState;
const SOURCE_KEY = 'runs/r1/fold-1/best/attempt-1.ckpt';
const RECORDS = 16;
const JOB = 'dcec-1';

before(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'cvc-cluster-attempt-test-'));
  store = createMemoryObjectStore();
  const ds: Dataset = tinyDataset();
  const prefix = 'datasets/tiny/v1';
  const m = await importDataset(ds, { folds: 2, scheme: 'stratified', seed: 1 }, async (name, chunks) => {
    const r = await store.put(`${prefix}/${name}`, chunks);
    return { bytes: r.bytes, sha256: r.sha256 };
  });
  manifestKey = `${prefix}/manifest.json`;
  await store.put(manifestKey, new TextEncoder().encode(JSON.stringify(m)));
  source = {
    config: resolveTrainConfig({ model: 'seed-mnist', epochs: 1, batchSize: 8, learningRate: 1e-3, seed: 1 }),
    epochsDone: 1,
    bnSteps: 0,
    history: [],
    best: null,
    weights: [{ name: 'w', shape: [2], dtype: 'float32', values: new Float32Array([1, 2]) }],
    optimizer: [],
  };
  await store.put(SOURCE_KEY, encodeCheckpoint(source));
  await store.put(`cluster-jobs/${JOB}/checkpoints/iter-0000020.ckpt`, new TextEncoder().encode('iter:20'));
});
after(async () => {
  await rm(cacheDir, { recursive: true, force: true });
});

function grpcError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

const job = (): ClusterJob =>
  ClusterJob.fromPartial({
    id: JOB,
    state: ClusterJobState.CLUSTER_JOB_STATE_RUNNING,
    fold: 1,
    lastCheckpointIteration: 20,
    spec: { runId: 'r1', method: 'dcec', k: 3, gamma: 0.1, updateInterval: 10, tol: 0.001, maxIterations: 50, batchSize: 8, learningRate: 1e-3, seed: 42 },
  });

const started = (over: Partial<StartClusterAttemptResponse> = {}): StartClusterAttemptResponse => ({
  proceed: true,
  token: 'tok-1',
  job: job(),
  manifest: manifestKey,
  sourceCheckpoint: SOURCE_KEY,
  resumeCheckpoint: '',
  reason: '',
  ...over,
});

/** Records the calls of both coordinator services; `stopAt` answers Ack.stop to that iteration's report; `failUpload` rejects uploads. */
class FakeServices implements CoordinatorApi, ClusterCoordinatorApi {
  readonly progress: ClusterJobProgress[] = [];
  readonly uploads: { attempt: AttemptRef; epoch: number; kind: CheckpointKind; bytes: Uint8Array }[] = [];
  readonly finished: FinishClusterJobRequest[] = [];
  readonly failed: FailFoldRequest[] = [];
  stopAt: number | undefined;
  /** Once set, every report is answered stop (the job was cancelled). */
  cancelled = false;
  failUpload: ServiceError | undefined;

  constructor(readonly start: StartClusterAttemptResponse = started()) {}

  /** The next StartClusterAttempt calls reject with these, one each. */
  readonly startFailures: ServiceError[] = [];
  starts = 0;

  startClusterAttempt(_req: StartClusterAttemptRequest): Promise<StartClusterAttemptResponse> {
    this.starts++;
    const err = this.startFailures.shift();
    if (err) return Promise.reject(err);
    return Promise.resolve(this.start);
  }
  reportClusterProgress(_a: AttemptRef, p: ClusterJobProgress): Promise<Ack> {
    this.progress.push(p);
    return Promise.resolve(p.iteration === this.stopAt || this.cancelled ? { stop: true, reason: 'job cancelled' } : { stop: false, reason: '' });
  }
  finishClusterJob(req: FinishClusterJobRequest): Promise<unknown> {
    this.finished.push(req);
    return Promise.resolve({});
  }
  uploadCheckpoint(attempt: AttemptRef, epoch: number, kind: CheckpointKind, bytes: Uint8Array): Promise<{ key: string; size: number }> {
    if (this.failUpload) return Promise.reject(this.failUpload);
    this.uploads.push({ attempt, epoch, kind, bytes });
    return Promise.resolve({ key: `k${epoch}`, size: bytes.length });
  }
  failFold(req: FailFoldRequest): Promise<unknown> {
    this.failed.push(req);
    return Promise.resolve({});
  }
  startAttempt(_req: StartAttemptRequest): Promise<StartAttemptResponse> {
    return Promise.reject(new Error('not a fold test'));
  }
  /** The ReportBadCheckpoint calls (with job_id), and the answers to give them in turn (then: a fresh start). */
  readonly badReports: ReportBadCheckpointRequest[] = [];
  readonly fallbacks: ReportBadCheckpointResponse[] = [];
  reportBadCheckpoint(req: ReportBadCheckpointRequest): Promise<ReportBadCheckpointResponse> {
    this.badReports.push(req);
    return Promise.resolve(this.fallbacks.shift() ?? { resumeCheckpoint: '', resumeEpoch: 0 });
  }
  reportEpoch(_a: AttemptRef, _m: EpochMetrics): Promise<unknown> {
    return Promise.reject(new Error('not a fold test'));
  }
  reportProgress(_a: AttemptRef, _p: FoldProgress): Promise<unknown> {
    return Promise.reject(new Error('not a fold test'));
  }
  finishFold(_r: FinishFoldRequest): Promise<unknown> {
    return Promise.reject(new Error('not a fold test'));
  }
}

/** What the fake fine-tune saw. */
interface Seen {
  opts?: FineTuneOptions;
  images?: number;
  resumedFrom?: number;
  batches: number;
}

/** A fine-tune that refreshes every updateInterval batches (progress + checkpoint `iter:N`), stopping at the signal or maxIterations; `throwAt` fails that batch. */
function fakeFineTune(seen: Seen, o: { throwAt?: number; throwError?: Error; onBatch?: (i: number) => void } = {}): FineTuneFn {
  return async (input, opts) => {
    seen.opts = opts;
    seen.images = input.images.count;
    assert.deepEqual(input.source.weights[0]?.values, new Float32Array([1, 2]), 'the source checkpoint is decoded');
    const text = opts.resume ? new TextDecoder().decode(opts.resume) : 'iter:0';
    if (!text.startsWith('iter:')) throw new ModelError('CHECKPOINT_CORRUPT', 'resume state: not a clustering state');
    const from = Number(text.replace('iter:', ''));
    seen.resumedFrom = from;
    for (let i = from + 1; i <= opts.maxIterations; i++) {
      throwIfAborted(opts.signal, 'fine-tune');
      seen.batches++;
      o.onBatch?.(i);
      if (i === o.throwAt) throw o.throwError ?? new Error(`boom at batch ${i}`);
      if (i % (opts.updateInterval ?? 140) === 0) {
        await opts.onProgress?.({
          iteration: i,
          maxIterations: opts.maxIterations,
          loss: 1 / i,
          clusterLoss: 0.5 / i,
          reconstructionLoss: 0.5 / i,
          changed: 0.1,
          acc: 0.5,
          seconds: 1,
        });
        await opts.onCheckpoint?.(new TextEncoder().encode(`iter:${i}`), i);
      }
      await new Promise((r) => setImmediate(r));
    }
    return {
      assignments: Int32Array.from({ length: input.images.count }, (_, i) => i % opts.k),
      confidence: Float32Array.from({ length: input.images.count }, () => 0.75),
      codes: new Float32Array(input.images.count * 2),
      d: 2,
      centres: new Float32Array(opts.k * 2),
      iterations: opts.maxIterations,
      stopReason: 'max-iterations',
      initial: { acc: 0.3, nmi: 0.2, ari: 0.1 },
      final: { acc: 0.6, nmi: 0.5, ari: 0.4 },
      state: input.source,
    };
  };
}

async function delivery(queue: MemoryTaskQueue) {
  await queue.enqueue({ runId: 'r1', fold: 1, jobId: JOB });
  const d = await queue.next(10);
  assert.ok(d);
  return d;
}

function deps(s: FakeServices, fineTune: FineTuneFn): ClusterAttemptDeps {
  return { worker: 'w1', store, shards: new ShardCache(store, cacheDir), coordinator: s, cluster: s, fineTune, logger: silentLogger, random: () => 0.5 };
}

test('a job attempt fine-tunes every record, reports and checkpoints each refresh, uploads CLUSTER_FINAL, finishes and acks', async () => {
  const queue = createMemoryTaskQueue();
  const s = new FakeServices();
  const seen: Seen = { batches: 0 };
  const d = await delivery(queue);
  assert.equal(await runClusterAttempt(deps(s, fakeFineTune(seen)), d, new AbortController().signal), undefined);
  assert.equal(seen.images, RECORDS, 'every record of the dataset, train and test');
  assert.equal(seen.resumedFrom, 0);
  assert.equal(seen.opts?.labels?.length, RECORDS, 'a labelled dataset passes its labels');
  assert.deepEqual([seen.opts?.method, seen.opts?.k, seen.opts?.updateInterval, seen.opts?.maxIterations], ['dcec', 3, 10, 50]);
  assert.deepEqual(
    s.progress.map((p) => p.iteration),
    [10, 20, 30, 40, 50],
  );
  const kinds = s.uploads.map((u) => [u.kind, u.epoch]);
  assert.deepEqual(kinds, [
    [CheckpointKind.CHECKPOINT_KIND_CLUSTER, 10],
    [CheckpointKind.CHECKPOINT_KIND_CLUSTER, 20],
    [CheckpointKind.CHECKPOINT_KIND_CLUSTER, 30],
    [CheckpointKind.CHECKPOINT_KIND_CLUSTER, 40],
    [CheckpointKind.CHECKPOINT_KIND_CLUSTER, 50],
    [CheckpointKind.CHECKPOINT_KIND_CLUSTER_FINAL, 50],
  ]);
  assert.deepEqual(s.uploads[0]?.attempt, { runId: 'r1', fold: 1, token: 'tok-1', jobId: JOB });
  // The final checkpoint is the fine-tuned state in the fold-checkpoint format.
  assert.deepEqual(decodeCheckpoint(s.uploads[5]?.bytes ?? new Uint8Array()).weights[0]?.values, new Float32Array([1, 2]));
  const f = s.finished[0];
  assert.equal(f?.assignments.length, RECORDS);
  assert.equal(f?.confidence.length, RECORDS);
  assert.deepEqual([f?.result?.iterations, f?.result?.stopReason, f?.result?.initialAcc, f?.result?.acc], [50, 'max-iterations', 0.3, 0.6]);
  assert.equal(queue.record({ runId: 'r1', fold: 1, jobId: JOB })?.state, 'acked');
  assert.equal(s.failed.length, 0);
});

test('a corrupt resume checkpoint is reported (with job_id) and the job resumes from the one the coordinator answers; no delivery is used up', async () => {
  const bad = `cluster-jobs/${JOB}/checkpoints/iter-0000030.ckpt`;
  await store.put(bad, new TextEncoder().encode('rotten'));
  const queue = createMemoryTaskQueue();
  const s = new FakeServices(started({ resumeCheckpoint: bad }));
  s.fallbacks.push({ resumeCheckpoint: `cluster-jobs/${JOB}/checkpoints/iter-0000020.ckpt`, resumeEpoch: 20 });
  const seen: Seen = { batches: 0 };
  await runClusterAttempt(deps(s, fakeFineTune(seen)), await delivery(queue), new AbortController().signal);
  assert.deepEqual(
    s.badReports.map((r) => [r.checkpoint, r.attempt?.jobId, r.attempt?.token]),
    [[bad, JOB, 'tok-1']],
  );
  assert.match(s.badReports[0]?.reason ?? '', /^CHECKPOINT_CORRUPT: /);
  assert.equal(seen.resumedFrom, 20);
  assert.equal(s.finished.length, 1);
  assert.equal(s.failed.length, 0);
  assert.equal(queue.record({ runId: 'r1', fold: 1, jobId: JOB })?.state, 'acked');
});

test('a resume checkpoint not found that the coordinator says is stored (it answers the same key) is downloaded again, not dropped', async () => {
  const late = `cluster-jobs/${JOB}/checkpoints/iter-0000040.ckpt`;
  const queue = createMemoryTaskQueue();
  const s = new FakeServices(started({ resumeCheckpoint: late }));
  s.fallbacks.push({ resumeCheckpoint: late, resumeEpoch: 40 });
  const seen: Seen = { batches: 0 };
  // The object shows up by the second download (the worker's view of the store was behind).
  const sleep = (): Promise<void> => store.put(late, new TextEncoder().encode('iter:40')).then(() => undefined);
  await runClusterAttempt({ ...deps(s, fakeFineTune(seen)), sleep }, await delivery(queue), new AbortController().signal);
  assert.equal(s.badReports.length, 1);
  assert.match(s.badReports[0]?.reason ?? '', /^NOT_FOUND: /);
  assert.equal(seen.resumedFrom, 40);
  assert.equal(s.failed.length, 0);
  assert.equal(queue.record({ runId: 'r1', fold: 1, jobId: JOB })?.state, 'acked');
});

test('stop() during the wait before a missing resume checkpoint is downloaded again ends the wait: the task is handed back', { timeout: 10_000 }, async () => {
  const late = `cluster-jobs/${JOB}/checkpoints/iter-0000050.ckpt`;
  const queue = createMemoryTaskQueue();
  const s = new FakeServices(started({ resumeCheckpoint: late }));
  s.fallbacks.push({ resumeCheckpoint: late, resumeEpoch: 50 });
  const stop = new AbortController();
  // A wait that only an abort of its signal ends (the worker is told to stop as it begins).
  const sleep = (_ms: number, signal?: AbortSignal): Promise<void> =>
    new Promise((_resolve, reject) => {
      signal?.addEventListener('abort', () => reject(new CancelledError('the wait')), { once: true });
      stop.abort(new Error('worker stopping'));
    });
  const d = await delivery(queue);
  await runClusterAttempt({ ...deps(s, fakeFineTune({ batches: 0 })), sleep }, d, stop.signal);
  assert.equal(s.failed.length, 0);
  assert.equal(queue.record({ runId: 'r1', fold: 1, jobId: JOB })?.state, 'pending', 'handed back (nak)');
});

test('an attempt with a resume checkpoint continues from it', async () => {
  const queue = createMemoryTaskQueue();
  const s = new FakeServices(started({ resumeCheckpoint: `cluster-jobs/${JOB}/checkpoints/iter-0000020.ckpt` }));
  const seen: Seen = { batches: 0 };
  await runClusterAttempt(deps(s, fakeFineTune(seen)), await delivery(queue), new AbortController().signal);
  assert.equal(seen.resumedFrom, 20);
  assert.equal(seen.batches, 30, 'only the batches after the checkpoint are trained');
  assert.deepEqual(
    s.progress.map((p) => p.iteration),
    [30, 40, 50],
  );
  assert.equal(s.finished.length, 1);
});

test('Ack.stop (the job was cancelled) stops the fine-tune after its batch: no final upload, no finish, no failure, the task acked', async () => {
  const queue = createMemoryTaskQueue();
  const s = new FakeServices();
  s.stopAt = 20;
  const seen: Seen = { batches: 0 };
  await runClusterAttempt(deps(s, fakeFineTune(seen)), await delivery(queue), new AbortController().signal);
  assert.ok(seen.batches < 50 && seen.batches >= 20, `stopped soon after the refresh at 20 (${seen.batches} batches)`);
  assert.equal(s.finished.length, 0);
  assert.equal(s.failed.length, 0);
  assert.ok(!s.uploads.some((u) => u.kind === CheckpointKind.CHECKPOINT_KIND_CLUSTER_FINAL));
  assert.equal(queue.record({ runId: 'r1', fold: 1, jobId: JOB })?.state, 'acked');
});

test('a cancel between refreshes lands within the poll interval: the last report is sent again, answered stop, and the fine-tune ends after its batch', async () => {
  const queue = createMemoryTaskQueue();
  const s = new FakeServices();
  const seen: Seen = { batches: 0 };
  const slow = (i: number): void => {
    // About 2 ms a batch, so the 1 ms poll runs between batches.
    for (const until = performance.now() + 2; performance.now() < until;);
    if (i === 12) s.cancelled = true;
  };
  await runClusterAttempt({ ...deps(s, fakeFineTune(seen, { onBatch: slow })), cancelPollMs: 1 }, await delivery(queue), new AbortController().signal);
  assert.ok(seen.batches >= 12 && seen.batches < 20, `stopped before the next refresh at 20 (${seen.batches} batches)`);
  assert.deepEqual([...new Set(s.progress.map((p) => p.iteration))], [10], 'only the refresh at 10 was reported, then sent again by the poll');
  assert.ok(s.progress.length >= 2, 'the poll sent the last report again');
  assert.equal(s.finished.length, 0);
  assert.equal(s.failed.length, 0);
  assert.equal(queue.record({ runId: 'r1', fold: 1, jobId: JOB })?.state, 'acked');
});

test('a cancelled job whose ack fails (NATS unreachable) is logged, not thrown: the attempt ends normally and the task stays in flight for redelivery', async () => {
  const queue = createMemoryTaskQueue();
  const s = new FakeServices();
  s.stopAt = 20;
  const seen: Seen = { batches: 0 };
  const real = await delivery(queue);
  const warnings: string[] = [];
  const logger = { ...silentLogger, warn: (msg: string) => void warnings.push(msg) };
  const d = { ...real, ack: () => Promise.reject(new Error('TIMEOUT')) };
  assert.equal(await runClusterAttempt({ ...deps(s, fakeFineTune(seen)), logger }, d, new AbortController().signal), undefined);
  assert.equal(s.failed.length, 0);
  assert.ok(
    warnings.some((w) => /acknowledging the task failed/.test(w)),
    warnings.join('; '),
  );
  assert.equal(queue.record({ runId: 'r1', fold: 1, jobId: JOB })?.state, 'in-flight');
});

test('an upload refused as CANCELLED stops the attempt and acks; one refused as stale abandons it (neither ack nor failure)', async () => {
  for (const [code, state] of [
    [status.CANCELLED, 'acked'],
    [status.FAILED_PRECONDITION, 'in-flight'],
  ] as const) {
    const queue = createMemoryTaskQueue();
    const s = new FakeServices();
    s.failUpload = grpcError(code, code === status.CANCELLED ? `clustering job ${JOB} was cancelled` : 'stale attempt token');
    const seen: Seen = { batches: 0 };
    await runClusterAttempt(deps(s, fakeFineTune(seen)), await delivery(queue), new AbortController().signal);
    assert.ok(seen.batches < 50, `${status[code]}: stopped early`);
    assert.equal(s.failed.length, 0, status[code]);
    assert.equal(s.finished.length, 0);
    assert.equal(queue.record({ runId: 'r1', fold: 1, jobId: JOB })?.state, state, status[code]);
  }
});

test("a CANCELLED that is not the coordinator's cancel (a reset stream through a proxy) is a transient failure: FailFold(final=false) and a nak, not a dropped task", async () => {
  const queue = createMemoryTaskQueue({ maxDeliver: 3 });
  const s = new FakeServices();
  s.failUpload = grpcError(status.CANCELLED, 'Call cancelled');
  await runClusterAttempt(deps(s, fakeFineTune({ batches: 0 })), await delivery(queue), new AbortController().signal);
  assert.equal(s.failed.length, 1);
  assert.equal(s.failed[0]?.final, false);
  assert.notEqual(queue.record({ runId: 'r1', fold: 1, jobId: JOB })?.state, 'acked', 'the job keeps its task');
});

test('a fine-tune that throws fails the attempt with FailFold(job_id) and naks the task; on the last delivery, final and termed', async () => {
  const queue = createMemoryTaskQueue({ maxDeliver: 2 });
  const s = new FakeServices();
  const seen: Seen = { batches: 0 };
  await runClusterAttempt(deps(s, fakeFineTune(seen, { throwAt: 15 })), await delivery(queue), new AbortController().signal);
  assert.equal(s.failed.length, 1);
  assert.equal(s.failed[0]?.attempt?.jobId, JOB);
  assert.match(s.failed[0]?.error ?? '', /boom at batch 15/);
  assert.equal(s.failed[0]?.final, false);
  // Naked with a backoff (about 2 s on the first delivery): it comes back by itself.
  assert.notEqual(queue.record({ runId: 'r1', fold: 1, jobId: JOB })?.state, 'acked');
  const again = await queue.next(10_000);
  assert.equal(again?.delivery, 2);
  assert.ok(again);
  await runClusterAttempt(deps(s, fakeFineTune(seen, { throwAt: 15 })), again, new AbortController().signal);
  assert.equal(s.failed[1]?.final, true);
  assert.equal(queue.record({ runId: 'r1', fold: 1, jobId: JOB })?.state, 'termed');
});

test('a failure another delivery would only repeat (NaN, a corrupt checkpoint) is final on the first delivery and termed', async () => {
  for (const err of [
    new ModelError('LOSS_NOT_FINITE', 'the codes hold NaN (image 0) at iteration 10'),
    new ModelError('CHECKPOINT_CORRUPT', 'source checkpoint: weight enc_conv1/kernel holds NaN (value 3)'),
  ]) {
    const queue = createMemoryTaskQueue({ maxDeliver: 3 });
    const s = new FakeServices();
    await runClusterAttempt(deps(s, fakeFineTune({ batches: 0 }, { throwAt: 15, throwError: err })), await delivery(queue), new AbortController().signal);
    assert.equal(s.failed.length, 1, err.code);
    assert.equal(s.failed[0]?.final, true, `${err.code}: final on delivery 1 of 3`);
    assert.equal(s.failed[0]?.error, err.message);
    assert.equal(queue.record({ runId: 'r1', fold: 1, jobId: JOB })?.state, 'termed');
  }
});

test("the Worker hands a job's task to the clustering attempt, and stop() interrupts it: the task is handed back at once", async () => {
  const queue = createMemoryTaskQueue();
  const s = new FakeServices();
  const seen: Seen = { batches: 0 };
  const holder: { worker?: Worker } = {};
  const fineTune = fakeFineTune(seen, { onBatch: (i) => (i === 25 ? holder.worker?.stop() : undefined) });
  const worker = (holder.worker = new Worker({ id: 'w1', queue, store, coordinator: s, cluster: s, fineTune, cacheDir, pollMs: 10 }));
  await queue.enqueue({ runId: 'r1', fold: 1, jobId: JOB });
  await worker.run();
  assert.ok(seen.batches >= 25 && seen.batches < 50, `${seen.batches} batches`);
  assert.equal(s.failed.length, 0);
  assert.equal(s.finished.length, 0);
  assert.equal(queue.record({ runId: 'r1', fold: 1, jobId: JOB })?.state, 'pending', 'naked for another worker');
});

test('a coordinator unreachable at StartClusterAttempt (past the client retries) holds the delivery until it answers; a failed ack of the finished job is logged, not a failure', async () => {
  const queue = createMemoryTaskQueue();
  const s = new FakeServices();
  s.startFailures.push(grpcError(status.UNAVAILABLE, 'connect ECONNREFUSED'), grpcError(status.DEADLINE_EXCEEDED, 'deadline exceeded'));
  const warnings: string[] = [];
  const logger = { ...silentLogger, warn: (msg: string) => void warnings.push(msg) };
  const real = await delivery(queue);
  let naks = 0;
  const d = {
    ...real,
    ack: () => Promise.reject(new Error('TIMEOUT')),
    nak: (ms?: number) => {
      naks++;
      real.nak(ms);
    },
  };
  assert.equal(await runClusterAttempt({ ...deps(s, fakeFineTune({ batches: 0 })), logger, startRetryMs: 1 }, d, new AbortController().signal), undefined);
  assert.equal(s.starts, 3, 'two refusals, then the answer, on the same delivery');
  assert.equal(naks, 0, 'never handed back');
  assert.equal(s.finished.length, 1);
  assert.equal(s.failed.length, 0, 'the finished job is not reported failed when its ack fails');
  assert.equal(warnings.filter((w) => /coordinator is unreachable; holding the task/.test(w)).length, 2);
  assert.ok(warnings.some((w) => /acknowledging the task failed/.test(w)));
});
