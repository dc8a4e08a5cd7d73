// Clustering jobs over the in-memory task queue, document stores and object
// store (@cvc/testkit): a real (tiny) imported dataset, a source run finished
// through the Coordinator with a stand-in export, and a stand-in encoder export.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { importDataset, type Dataset } from '@cvc/data';
import { randomImageSet } from '@cvc/data/testing';
import {
  CheckpointKind,
  ClusterJobState,
  EpochMetrics,
  EvalMetrics,
  RunState,
  type AttemptRef,
  type ClusterJobEvent,
  type ClusterJobProgress,
  type ClusterJobSpec,
  type RunSpec,
} from '@cvc/proto';
import { createDatasetCatalog } from '@cvc/storage';
import { createMemoryDocStore, createMemoryObjectStore, createMemoryTaskQueue, type MemoryObjectStore, type MemoryTaskQueue } from '@cvc/testkit';
import type { ClusterJobDoc } from './cluster-job-doc.js';
import { writeAssignments, type JobExporter } from './cluster-job-export.js';
import { ClusterJobs, REQUEUE_WINDOW_MS } from './cluster-jobs.js';
import { Coordinator } from './coordinator.js';
import { CoordinatorError, MAX_ERROR_CHARS } from './errors.js';
import type { RunDoc } from './run-doc.js';

const DATASET = 'tiny';
const PREFIX = `datasets/${DATASET}/v1`;
const MANIFEST = `${PREFIX}/manifest.json`;
const TRAIN = 12;
const TEST = 4;
const RECORDS = TRAIN + TEST;
const T = { timeout: 10_000 };
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const outcome = (o: string, re?: RegExp) => (e: unknown) => e instanceof CoordinatorError && e.outcome === o && (!re || re.test(e.message));

async function* bytes(b: Uint8Array): AsyncGenerator<Uint8Array> {
  yield await Promise.resolve(b);
}

interface World {
  readonly store: MemoryObjectStore;
  readonly queue: MemoryTaskQueue;
  readonly coordinator: Coordinator;
  readonly jobDocs: ReturnType<typeof createMemoryDocStore<ClusterJobDoc>>;
  /** The source run: SUCCEEDED, fold 1 the best. */
  readonly runId: string;
  /** A ClusterJobs over the world's stores (a new one is a restarted coordinator). */
  jobs(exportJob?: JobExporter): ClusterJobs;
  /** Moves the clock on by `ms` (it also moves 1 s at every reading). */
  advance(ms: number): void;
}

/** The stand-in export: encoder bytes, and the real assignments.csv. */
const fakeExport: JobExporter = async (input) => {
  const prefix = `cluster-jobs/${input.job.id}/encoder`;
  await input.store.put(`${prefix}/model.json`, enc('{"format":"layers-model"}'));
  await input.store.put(`${prefix}/weights.bin`, new Uint8Array([1, 2, 3]));
  return { encoder: prefix, assignments: await writeAssignments(input) };
};

async function world(): Promise<World> {
  const store = createMemoryObjectStore();
  const queue = createMemoryTaskQueue({ maxDeliver: 3 });
  const runs = createMemoryDocStore<RunDoc>();
  const jobDocs = createMemoryDocStore<ClusterJobDoc>();
  const ds: Dataset = {
    name: DATASET,
    dir: '',
    format: 'idx',
    numClasses: 10,
    classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
    train: randomImageSet(TRAIN, 28, 28, 1, 1),
    test: randomImageSet(TEST, 28, 28, 1, 2),
  };
  const m = await importDataset(ds, { folds: 2, scheme: 'stratified', seed: 1 }, async (name, chunks) => {
    const r = await store.put(`${PREFIX}/${name}`, chunks);
    return { bytes: r.bytes, sha256: r.sha256 };
  });
  await store.put(MANIFEST, enc(JSON.stringify(m)));
  await createDatasetCatalog(store).register(DATASET, {
    version: 'v1',
    folds: 2,
    scheme: 'stratified',
    seed: 1,
    limit: null,
    manifest: MANIFEST,
    height: 28,
    width: 28,
    channels: 1,
  });
  let clock = Date.UTC(2026, 0, 2, 3, 4, 5);
  const now = (): number => (clock += 1000);
  const coordinator = new Coordinator({
    store,
    queue,
    runs,
    now,
    finalizeRetry: { initialMs: 1, maxMs: 4 },
    exportArtifacts: ({ run }) => Promise.resolve(`runs/${run.id}/encoder`),
  });
  const spec: RunSpec = { name: '', dataset: DATASET, model: 'seed-mnist', folds: 2, epochs: 1, upsample: '', datasetVersion: '', modelConfigJson: '' };
  const run = await coordinator.submitRun(spec);
  for (const [fold, val] of [
    [0, 0.5],
    [1, 0.3],
  ] as const) {
    const s = await coordinator.startAttempt({ runId: run.id, fold, worker: 'w', delivery: 1 });
    const a: AttemptRef = { runId: run.id, fold, token: s.token, jobId: '' };
    await coordinator.reportEpoch(a, EpochMetrics.fromPartial({ epoch: 1, loss: val, valLoss: val, valMse: val, seconds: 1, imagesPerSec: 1 }));
    const ck = new Uint8Array([fold, 9]);
    await coordinator.uploadCheckpoint({ attempt: a, epoch: 1, kind: CheckpointKind.CHECKPOINT_KIND_BEST, size: ck.length }, bytes(ck), () => sha(ck));
    const ev = EvalMetrics.fromPartial({ loss: val, mse: val, count: 1 });
    await coordinator.finishFold({ attempt: a, bestEpoch: 1, train: ev, val: ev, test: ev });
  }
  await coordinator.idle();
  assert.equal((await coordinator.getRun(run.id)).state, RunState.RUN_STATE_SUCCEEDED);
  // The run's tasks were taken by "workers": drain them so the queue holds only jobs.
  for (;;) {
    const d = await queue.next(1);
    if (!d) break;
    await d.ack();
  }
  return {
    store,
    queue,
    coordinator,
    jobDocs,
    runId: run.id,
    jobs: (exportJob = fakeExport) =>
      new ClusterJobs({ store, queue, jobs: jobDocs, getRun: (id) => coordinator.getRun(id), now, exportJob, finalizeRetry: { initialMs: 1, maxMs: 4 } }),
    advance: (ms) => {
      clock += ms;
    },
  };
}

const jobSpec = (runId: string, over: Partial<ClusterJobSpec> = {}): ClusterJobSpec => ({
  runId,
  method: 'dcec',
  dataset: '',
  name: '',
  datasetVersion: '',
  ...over,
});

const progress = (iteration: number, over: Partial<ClusterJobProgress> = {}): ClusterJobProgress => ({
  iteration,
  maxIterations: 100,
  loss: 0.5,
  clusterLoss: 0.3,
  reconstructionLoss: 0.2,
  changed: 0.1,
  acc: 0.4,
  seconds: 1,
  updatedAtMs: 0,
  ...over,
});

async function startJob(j: ClusterJobs, jobId: string, runId: string, fold: number, delivery = 1): Promise<AttemptRef> {
  const s = await j.startAttempt({ jobId, worker: `w${delivery}`, delivery });
  assert.ok(s.proceed, s.reason);
  return { runId, fold, token: s.token, jobId };
}

async function upload(j: ClusterJobs, a: AttemptRef, kind: CheckpointKind, iteration: number, data = new Uint8Array([iteration & 255, 1])): Promise<string> {
  return (await j.uploadCheckpoint({ attempt: a, epoch: iteration, kind, size: data.length }, bytes(data), () => sha(data))).key;
}

const finishReq = (a: AttemptRef, n = RECORDS) => ({
  attempt: a,
  result: { encoder: '', assignments: '', iterations: 40, stopReason: 'converged', artifacts: {}, initialAcc: 0.3, acc: 0.6, nmi: 0.5, ari: 0.4 },
  assignments: Array.from({ length: n }, (_, i) => i % 3),
  confidence: Array.from({ length: n }, (_, i) => 0.5 + i / (4 * n)),
});

test('submit checks the source run, fold, method and numbers, naming the field; fills the defaults and enqueues a job task', T, async () => {
  const w = await world();
  const j = w.jobs();
  await assert.rejects(j.submit(jobSpec('no-such-run')), outcome('NOT_FOUND', /spec\.run_id: run no-such-run does not exist/));
  await assert.rejects(j.submit(jobSpec(w.runId, { method: 'kmeans' })), outcome('INVALID_ARGUMENT', /spec\.method: must be one of dcec, idec, dec/));
  await assert.rejects(j.submit(jobSpec(w.runId, { gamma: Number.NaN })), outcome('INVALID_ARGUMENT', /spec\.gamma: must be a finite number/));
  await assert.rejects(j.submit(jobSpec(w.runId, { updateInterval: 0 })), outcome('INVALID_ARGUMENT', /spec\.update_interval: must be an integer in 1\.\./));
  await assert.rejects(j.submit(jobSpec(w.runId, { tol: 2 })), outcome('INVALID_ARGUMENT', /spec\.tol/));
  await assert.rejects(j.submit(jobSpec(w.runId, { learningRate: 0 })), outcome('INVALID_ARGUMENT', /spec\.learning_rate: must be a finite number > 0/));
  await assert.rejects(j.submit(jobSpec(w.runId, { k: 1 })), outcome('INVALID_ARGUMENT', /spec\.k: must be an integer in 2\.\./));
  await assert.rejects(j.submit(jobSpec(w.runId, { k: 100 })), outcome('INVALID_ARGUMENT', /spec\.k: 100 clusters for 16 records/));
  await assert.rejects(j.submit(jobSpec(w.runId, { fold: 7 })), outcome('INVALID_ARGUMENT', /spec\.fold: run .* has no fold 7 \(it has 2\)/));
  await assert.rejects(j.submit(jobSpec(w.runId, { dataset: 'cifar10' })), outcome('NOT_FOUND', /spec\.dataset: dataset 'cifar10' is not imported/));
  await assert.rejects(j.submit(jobSpec(w.runId, { datasetVersion: 'v9' })), outcome('NOT_FOUND', /spec\.dataset_version: .* no version v9/));
  // A version of the run's dataset with no records (registered by hand: an import refuses an empty folder).
  const m = JSON.parse(new TextDecoder().decode(await w.store.getBytes(MANIFEST))) as { shards: unknown[] };
  await w.store.put('datasets/empty-manifest.json', enc(JSON.stringify({ ...m, shards: [] })));
  await createDatasetCatalog(w.store).register(DATASET, {
    version: 'v0',
    folds: 2,
    scheme: 'stratified',
    seed: 1,
    limit: null,
    manifest: 'datasets/empty-manifest.json',
    height: 28,
    width: 28,
    channels: 1,
  });
  await assert.rejects(
    j.submit(jobSpec(w.runId, { datasetVersion: 'v0' })),
    outcome('FAILED_PRECONDITION', new RegExp(`spec\\.dataset: dataset ${DATASET} version v0 has no records to cluster`)),
  );
  assert.equal(w.queue.records().filter((r) => r.task.jobId).length, 0, 'nothing was queued for a refused job');

  const job = await j.submit(jobSpec(w.runId));
  assert.equal(job.state, ClusterJobState.CLUSTER_JOB_STATE_PENDING);
  assert.equal(job.fold, 1, 'fold "best" resolves to the run summary best fold');
  assert.equal(job.datasetVersion, 'v1');
  assert.deepEqual(
    [
      job.spec?.k,
      job.spec?.gamma,
      job.spec?.updateInterval,
      job.spec?.tol,
      job.spec?.maxIterations,
      job.spec?.batchSize,
      job.spec?.learningRate,
      job.spec?.seed,
    ],
    [10, 0.1, 140, 0.001, 20_000, 256, 1e-3, 42],
  );
  assert.match(job.modelConfigJson, /"input"/, 'the job carries the source run model config');
  const rec = w.queue.records().filter((r) => r.task.jobId);
  assert.deepEqual(
    rec.map((r) => r.task),
    [{ runId: w.runId, fold: 1, jobId: job.id }],
  );
  assert.deepEqual(
    (await j.list()).map((x) => x.id),
    [job.id],
  );
});

test('a run that has not succeeded is FAILED_PRECONDITION', T, async () => {
  const w = await world();
  const spec: RunSpec = { name: '', dataset: DATASET, model: 'seed-mnist', folds: 2, epochs: 1, upsample: '', datasetVersion: '', modelConfigJson: '' };
  const pending = await w.coordinator.submitRun(spec);
  await assert.rejects(
    w.jobs().submit(jobSpec(pending.id)),
    outcome('FAILED_PRECONDITION', /spec\.run_id: run .* is PENDING; a clustering job needs a SUCCEEDED run/),
  );
});

test('attempts: a stale token is refused, progress is kept, the next attempt resumes from the last CLUSTER checkpoint', T, async () => {
  const w = await world();
  const j = w.jobs();
  const job = await j.submit(jobSpec(w.runId, { updateInterval: 10 }));
  const first = await startJob(j, job.id, w.runId, 1);
  let s = await j.get(job.id);
  assert.equal(s.state, ClusterJobState.CLUSTER_JOB_STATE_RUNNING);
  assert.equal(s.resumedFromIteration, 0);
  assert.deepEqual(await j.reportProgress(first, progress(10)), { stop: false, reason: '' });
  const rev = (await w.jobDocs.get(`job.${job.id}`))?.revision;
  await j.reportProgress(first, progress(10)); // a retried report (or the worker's cancel poll) is kept once, and not rewritten
  assert.equal((await w.jobDocs.get(`job.${job.id}`))?.revision, rev, 'the same report again writes nothing');
  await j.reportProgress(first, progress(20, { changed: 0.05 }));
  await assert.rejects(j.reportProgress(first, progress(30, { loss: Number.NaN })), outcome('INVALID_ARGUMENT', /progress\.loss/));
  await assert.rejects(j.reportProgress(first, progress(30, { changed: 1.5 })), outcome('INVALID_ARGUMENT', /progress\.changed/));
  const key10 = await upload(j, first, CheckpointKind.CHECKPOINT_KIND_CLUSTER, 10);
  const key20 = await upload(j, first, CheckpointKind.CHECKPOINT_KIND_CLUSTER, 20);
  assert.equal(key20, `cluster-jobs/${job.id}/checkpoints/iter-0000020.ckpt`);
  // One resumable state per job: the superseded one is removed; a retried upload of the latest keeps it.
  assert.equal(w.store.object(key10), undefined, 'the checkpoint at 10 was superseded and removed');
  assert.equal(await upload(j, first, CheckpointKind.CHECKPOINT_KIND_CLUSTER, 20), key20);
  assert.ok(w.store.object(key20));
  await assert.rejects(upload(j, first, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1), outcome('INVALID_ARGUMENT', /CLUSTER or CLUSTER_FINAL/));
  s = await j.get(job.id);
  assert.deepEqual(
    s.history.map((h) => [h.iteration, h.changed]),
    [
      [10, 0.1],
      [20, 0.05],
    ],
  );
  assert.equal(s.lastCheckpoint, key20);
  assert.equal(s.lastCheckpointIteration, 20);

  // The worker died; the task comes back (an ack_wait after its last heartbeat).
  w.advance(60_000);
  const second = await j.startAttempt({ jobId: job.id, worker: 'w2', delivery: 2 });
  assert.ok(second.proceed);
  assert.equal(second.resumeCheckpoint, key20);
  assert.equal(second.sourceCheckpoint, `runs/${w.runId}/fold-1/best/attempt-1.ckpt`);
  assert.equal(second.manifest, MANIFEST);
  s = await j.get(job.id);
  assert.equal(s.attempts, 2);
  assert.equal(s.resumedFromIteration, 20);
  assert.equal(s.worker, 'w2');
  await assert.rejects(j.reportProgress(first, progress(30)), outcome('FAILED_PRECONDITION', /stale attempt token/));
  await assert.rejects(upload(j, first, CheckpointKind.CHECKPOINT_KIND_CLUSTER, 30), outcome('FAILED_PRECONDITION', /stale attempt token/));
  await assert.rejects(j.finish(finishReq(first)), outcome('FAILED_PRECONDITION', /stale attempt token/));
});

test(
  'a bad resume checkpoint (ReportBadCheckpoint with job_id): the newest older stored one, else a fresh start; history cut, error says why; a retry changes nothing; a stored one reported missing is kept',
  T,
  async () => {
    const w = await world();
    const j = w.jobs();
    const job = await j.submit(jobSpec(w.runId, { updateInterval: 10 }));
    const first = await startJob(j, job.id, w.runId, 1);
    for (const i of [10, 20, 30]) await j.reportProgress(first, progress(i));
    const key20 = await upload(j, first, CheckpointKind.CHECKPOINT_KIND_CLUSTER, 20);
    // An older state left in the store (its removal as superseded is best effort).
    const key10 = `cluster-jobs/${job.id}/checkpoints/iter-0000010.ckpt`;
    await w.store.put(key10, new Uint8Array([10, 1]));
    w.advance(60_000);
    const second = await startJob(j, job.id, w.runId, 1, 2);
    await assert.rejects(j.reportBadCheckpoint({ attempt: first, checkpoint: key20, reason: 'x' }), outcome('FAILED_PRECONDITION'));
    const missing = `NOT_FOUND: ${key20}: get: no such object`;
    assert.deepEqual(
      await j.reportBadCheckpoint({ attempt: second, checkpoint: key20, reason: missing }),
      { resumeCheckpoint: key20, resumeEpoch: 20 },
      'it is stored',
    );
    assert.equal((await j.get(job.id)).lastCheckpoint, key20);

    const r = await j.reportBadCheckpoint({ attempt: second, checkpoint: key20, reason: 'CHECKPOINT_CORRUPT: bad magic' });
    assert.deepEqual(r, { resumeCheckpoint: key10, resumeEpoch: 10 });
    let s = await j.get(job.id);
    assert.deepEqual(
      s.history.map((h) => h.iteration),
      [10],
    );
    assert.equal(s.lastCheckpointIteration, 10);
    assert.equal(s.resumedFromIteration, 10);
    assert.equal(s.state, ClusterJobState.CLUSTER_JOB_STATE_RUNNING);
    assert.equal(s.attempts, 2);
    assert.equal(s.error, '', 'a fallback is not an error');
    assert.match(s.checkpointFallback, /iter-0000020\.ckpt \(iteration 20\) could not be used: CHECKPOINT_CORRUPT: bad magic; resumed from iteration 10/);
    const rev = (await w.jobDocs.get(`job.${job.id}`))?.revision;
    assert.deepEqual(await j.reportBadCheckpoint({ attempt: second, checkpoint: key20, reason: 'CHECKPOINT_CORRUPT: bad magic' }), r, 'a retry');
    assert.equal((await w.jobDocs.get(`job.${job.id}`))?.revision, rev, 'a retry writes nothing');

    // That one is gone too: a fresh start from the source checkpoint, which the next attempt still shows.
    await w.store.remove(key10);
    assert.deepEqual(await j.reportBadCheckpoint({ attempt: second, checkpoint: key10, reason: `NOT_FOUND: ${key10}` }), {
      resumeCheckpoint: '',
      resumeEpoch: 0,
    });
    s = await j.get(job.id);
    assert.deepEqual(s.history, []);
    assert.equal(s.lastCheckpoint, '');
    assert.match(s.checkpointFallback, /restarted from iteration 0 \(the source fold's best checkpoint/);
    w.advance(60_000);
    const third = await j.startAttempt({ jobId: job.id, worker: 'w3', delivery: 3 });
    assert.equal(third.resumeCheckpoint, '');
    assert.match((await j.get(job.id)).checkpointFallback, /restarted from iteration 0/, 'the next attempt still shows it');
  },
);

test('finish: FINALIZING, then the encoder and assignments.csv; SUCCEEDED; artifacts downloadable; a watch sees it end', T, async () => {
  const w = await world();
  const j = w.jobs();
  const job = await j.submit(jobSpec(w.runId, { k: 3 }));
  const events: ClusterJobEvent[] = [];
  const watching = j.watch(job.id, (e) => events.push(e), new AbortController().signal);
  const a = await startJob(j, job.id, w.runId, 1);
  await assert.rejects(j.finish(finishReq(a)), outcome('FAILED_PRECONDITION', /upload the CLUSTER_FINAL checkpoint before finishing/));
  await upload(j, a, CheckpointKind.CHECKPOINT_KIND_CLUSTER_FINAL, 40);
  await assert.rejects(j.finish(finishReq(a, RECORDS - 1)), outcome('INVALID_ARGUMENT', /one entry per record of the dataset \(16\)/));
  await assert.rejects(
    j.finish({ ...finishReq(a), assignments: Array.from({ length: RECORDS }, () => 3) }),
    outcome('INVALID_ARGUMENT', /assignments\[0\] is 3; clusters are 0\.\.2/),
  );
  await assert.rejects(
    j.finish({ ...finishReq(a), confidence: Array.from({ length: RECORDS }, () => Number.NaN) }),
    outcome('INVALID_ARGUMENT', /confidence\[0\]/),
  );
  await j.finish(finishReq(a));
  // The same attempt's finish again (its answer was lost, the client retried): OK, nothing changes.
  await j.finish(finishReq(a));
  await j.idle();
  await j.finish(finishReq(a));
  // Another token is still refused.
  await assert.rejects(j.finish(finishReq({ ...a, token: 'not-the-token' })), outcome('FAILED_PRECONDITION'));
  await watching;
  const done = await j.get(job.id);
  assert.equal(done.state, ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED, done.error);
  assert.equal(done.result?.encoder, `cluster-jobs/${job.id}/encoder`);
  assert.equal(done.result?.assignments, `cluster-jobs/${job.id}/assignments.csv`);
  assert.equal(done.result?.stopReason, 'converged');
  assert.equal(done.result?.acc, 0.6);
  assert.equal(events[events.length - 1]?.job?.state, ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED);
  assert.ok(events.some((e) => e.job?.state === ClusterJobState.CLUSTER_JOB_STATE_FINALIZING));

  const csv = new TextDecoder()
    .decode(await w.store.getBytes(`cluster-jobs/${job.id}/assignments.csv`))
    .trim()
    .split('\n');
  assert.equal(csv[0], 'record,split,fold,index,cluster,confidence,label,class,source');
  assert.equal(csv.length, RECORDS + 1);
  const rows = csv.slice(1).map((l) => l.split(','));
  assert.deepEqual(
    rows.map((r) => Number(r[0])),
    Array.from({ length: RECORDS }, (_, i) => i),
  );
  assert.deepEqual(
    rows.map((r) => Number(r[4])),
    Array.from({ length: RECORDS }, (_, i) => i % 3),
  );
  assert.equal(rows.filter((r) => r[1] === 'test').length, TEST);
  assert.equal(rows.filter((r) => r[1] === 'train').length, TRAIN);
  // Every training record appears once, by its index in the split, and names itself as its source.
  assert.deepEqual(
    rows
      .filter((r) => r[1] === 'train')
      .map((r) => Number(r[3]))
      .sort((x, y) => x - y),
    Array.from({ length: TRAIN }, (_, i) => i),
  );
  for (const r of rows) assert.equal(r[8], `${r[1]}:${r[3]}`);
  for (const r of rows) assert.equal(r[7], `c${r[6]}`);

  const art = await j.openArtifact(job.id, 'assignments.csv');
  const chunks: Uint8Array[] = [];
  for await (const c of art.stream) chunks.push(c);
  assert.equal(Buffer.concat(chunks).length, art.size);
  assert.equal((await j.openArtifact(job.id, 'model.json')).key, `cluster-jobs/${job.id}/encoder/model.json`);
  await assert.rejects(j.openArtifact(job.id, 'nope.png'), outcome('NOT_FOUND', /has no artifact "nope.png"/));
  // Names of Object.prototype's members are no artifacts either.
  for (const name of ['constructor', 'toString', '__proto__'])
    await assert.rejects(j.openArtifact(job.id, name), outcome('NOT_FOUND', new RegExp(`has no artifact "${name}"`)));
  // Finished: a late redelivery needs no work.
  assert.equal((await j.startAttempt({ jobId: job.id, worker: 'w9', delivery: 2 })).proceed, false);
});

test('cancel: the worker is told stop at its next report, CANCELLED on uploads; a new delivery needs no work', T, async () => {
  const w = await world();
  const j = w.jobs();
  const job = await j.submit(jobSpec(w.runId));
  const a = await startJob(j, job.id, w.runId, 1);
  await assert.rejects(j.openArtifact(job.id, 'assignments.csv'), outcome('FAILED_PRECONDITION', /is running/));
  assert.equal((await j.cancel(job.id)).state, ClusterJobState.CLUSTER_JOB_STATE_CANCELLED);
  const ack = await j.reportProgress(a, progress(10));
  assert.equal(ack.stop, true);
  assert.match(ack.reason, /cancelled/);
  await assert.rejects(upload(j, a, CheckpointKind.CHECKPOINT_KIND_CLUSTER, 10), outcome('CANCELLED'));
  assert.equal((await j.startAttempt({ jobId: job.id, worker: 'w', delivery: 2 })).proceed, false);
  assert.equal((await j.cancel(job.id)).state, ClusterJobState.CLUSTER_JOB_STATE_CANCELLED, 'a second cancel changes nothing');
});

test('failures: a non-final FailFold returns the job to PENDING, a final one FAILS it; a given-up task FAILS it with the reason', T, async () => {
  const w = await world();
  const j = w.jobs();
  const one = await j.submit(jobSpec(w.runId));
  let a = await startJob(j, one.id, w.runId, 1);
  await j.fail({ attempt: a, error: 'out of memory', final: false });
  let s = await j.get(one.id);
  assert.equal(s.state, ClusterJobState.CLUSTER_JOB_STATE_PENDING);
  assert.equal(s.error, 'out of memory');
  a = await startJob(j, one.id, w.runId, 1, 2);
  await j.fail({ attempt: a, error: 'out of memory again', final: true });
  s = await j.get(one.id);
  assert.equal(s.state, ClusterJobState.CLUSTER_JOB_STATE_FAILED);
  assert.equal(s.error, 'out of memory again');
  // An error of any length is kept to MAX_ERROR_CHARS.
  const long = await j.submit(jobSpec(w.runId));
  await j.fail({ attempt: await startJob(j, long.id, w.runId, 1), error: 'e'.repeat(50_000), final: true });
  assert.equal((await j.get(long.id)).error.length, MAX_ERROR_CHARS);

  const two = await j.submit(jobSpec(w.runId));
  await startJob(j, two.id, w.runId, 1);
  await j.onTaskGivenUp({ runId: w.runId, fold: 1, jobId: two.id }, 3);
  s = await j.get(two.id);
  assert.equal(s.state, ClusterJobState.CLUSTER_JOB_STATE_FAILED);
  assert.match(s.error, /gave up after 3 deliveries without a result/);
});

test('a coordinator stopped while finalising: a new one over the same stores finishes the job on recover(), and requeues a never-started job', T, async () => {
  const w = await world();
  let release: () => void = () => {};
  const held: JobExporter = (input) =>
    new Promise((_, reject) => {
      release = () => reject(new Error('stopped'));
      input.signal.addEventListener('abort', () => reject(input.signal.reason as Error), { once: true });
    });
  const old = w.jobs(held);
  const job = await old.submit(jobSpec(w.runId, { k: 3 }));
  const a = await startJob(old, job.id, w.runId, 1);
  await upload(old, a, CheckpointKind.CHECKPOINT_KIND_CLUSTER_FINAL, 40);
  await old.finish(finishReq(a));
  await old.close();
  release();
  assert.equal((await old.get(job.id)).state, ClusterJobState.CLUSTER_JOB_STATE_FINALIZING);

  // A job recorded but whose task was never published (the coordinator died in between).
  const lostDoc = (await w.jobDocs.get(`job.${job.id}`))?.value;
  assert.ok(lostDoc);
  await w.jobDocs.create('job.lost-1', {
    ...lostDoc,
    token: '',
    job: { ...lostDoc.job, id: 'lost-1', state: ClusterJobState.CLUSTER_JOB_STATE_PENDING, attempts: 0, result: undefined },
  });
  const fresh = w.jobs();
  const r = await fresh.recover({ requeue: true });
  assert.deepEqual(r, { finalizing: [job.id], requeued: ['lost-1'] });
  await fresh.idle();
  assert.equal((await fresh.get(job.id)).state, ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED);
  assert.ok(w.store.object(`cluster-jobs/${job.id}/assignments.csv`));
  assert.ok(w.queue.record({ runId: w.runId, fold: 1, jobId: 'lost-1' }));
});

test(
  'a job whose task publish failed at submit is published by the next periodic recover(); one older than the duplicate window is left alone',
  T,
  async () => {
    const w = await world();
    const jobs = w.jobs();
    const enqueue = w.queue.enqueue.bind(w.queue);
    w.queue.enqueue = () => Promise.reject(new Error('nats: timeout'));
    await assert.rejects(jobs.submit(jobSpec(w.runId, { k: 3 })), /nats: timeout/);
    w.queue.enqueue = enqueue;
    const keys = (await w.jobDocs.keys()).filter((k) => k.startsWith('job.'));
    assert.equal(keys.length, 1, 'the job was recorded before the publish failed');
    const orphan = (await w.jobDocs.get(keys[0] as string))?.value.job;
    assert.ok(orphan && orphan.state === ClusterJobState.CLUSTER_JOB_STATE_PENDING);
    assert.equal(w.queue.record({ runId: w.runId, fold: 1, jobId: orphan.id }), undefined, 'no task yet');
    // An old never-started job (past the duplicate window): a second publish could give it two tasks.
    const old = (await w.jobDocs.get(keys[0] as string))?.value;
    assert.ok(old);
    await w.jobDocs.create('job.old-1', { ...old, job: { ...old.job, id: 'old-1', createdAtMs: old.job.createdAtMs - REQUEUE_WINDOW_MS - 1 } });
    const r = await jobs.recover();
    assert.deepEqual(r.requeued, [orphan.id]);
    assert.ok(w.queue.record({ runId: w.runId, fold: 1, jobId: orphan.id }), 'the orphan has its task now');
    assert.equal(w.queue.record({ runId: w.runId, fold: 1, jobId: 'old-1' }), undefined);
    // Once published, later sweeps publish nothing new (duplicates), and a start-up recover covers the old one.
    assert.deepEqual((await jobs.recover()).requeued, []);
    assert.deepEqual((await jobs.recover({ requeue: true })).requeued, ['old-1']);
  },
);

test(
  'a second task for a job whose attempt was heard from recently is refused as a duplicate; a redelivery of its own task, or a task once it went quiet, starts',
  T,
  async () => {
    const w = await world();
    const j = w.jobs();
    const job = await j.submit(jobSpec(w.runId, { updateInterval: 10 }));
    // A start-up requeue after the 24-hour duplicate window published the job's task a second time: both are delivered.
    const first = await startJob(j, job.id, w.runId, 1);
    const dup = await j.startAttempt({ jobId: job.id, worker: 'w9', delivery: 1 });
    assert.equal(dup.proceed, false, 'the worker acks a task that needs no work: the duplicate is dropped');
    assert.match(dup.reason, /^job is being run by a live attempt \(worker w1, heard from \d+ s ago\); this task is a duplicate$/);
    await j.reportProgress(first, progress(10));
    // The worker's cancel poll repeats its last report every 10 s: that keeps it heard from (40 s after the report itself).
    w.advance(20_000);
    await j.reportProgress(first, progress(10));
    w.advance(20_000);
    assert.equal((await j.startAttempt({ jobId: job.id, worker: 'w9', delivery: 1 })).proceed, false);
    assert.deepEqual(await j.reportProgress(first, progress(20)), { stop: false, reason: '' }, 'the live attempt keeps the job');
    // Its own task handed back (a nak when its worker stops, redelivered at once) takes the job over however recent the report.
    const again = await j.startAttempt({ jobId: job.id, worker: 'w2', delivery: 2 });
    assert.ok(again.proceed, again.reason);
    assert.equal((await j.get(job.id)).attempts, 2);
    await assert.rejects(j.reportProgress(first, progress(30)), outcome('FAILED_PRECONDITION', /stale attempt token/));
    // An attempt quiet for more than half an ack_wait (60 s) may be dead: a new task takes over.
    w.advance(31_000);
    const late = await j.startAttempt({ jobId: job.id, worker: 'w3', delivery: 1 });
    assert.ok(late.proceed, late.reason);
  },
);
