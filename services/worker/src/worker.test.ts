// Unit tests of the worker loop: the memory task queue and object store of
// @cvc/testkit, a fake coordinator and a fake trainer; no servers, no
// TensorFlow.js. Each test runs in milliseconds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, Server, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { CancelledError, throwIfAborted, type Logger } from '@cvc/core';
import { importDataset, type Dataset, type ImageSet } from '@cvc/data';
import { tinyDataset } from '@cvc/data/testing';
import { ModelError, type BatchProgress, type EpochRecord, type TrainConfigInput } from '@cvc/model';
import {
  CheckpointKind,
  RunSpec,
  WorkerServiceService,
  type AttemptRef,
  type EpochMetrics,
  type FailFoldRequest,
  type FinishFoldRequest,
  type FoldProgress,
  type ReportBadCheckpointRequest,
  type ReportBadCheckpointResponse,
  type StartAttemptRequest,
  type StartAttemptResponse,
} from '@cvc/proto';
import type { FoldTask, TaskDelivery, TaskQueue } from '@cvc/messaging';
import type { ObjectStore } from '@cvc/storage';
import { createMemoryObjectStore, createMemoryTaskQueue, type MemoryObjectStore, type MemoryTaskQueue } from '@cvc/testkit';
import { createWorkerMetrics } from '@cvc/metrics';
import { ManualClock } from '@cvc/metrics/testing';
import { CoordinatorClient } from './client.js';
import type { CoordinatorApi } from './coordinator-api.js';
import type { TrainerFactory, WorkerFitCallbacks, WorkerTrainer } from './trainer-factory.js';
import { Worker, type WorkerDeps } from './worker.js';
import { workerMetricsHooks } from './metrics-hooks.js';

// ---------------------------------------------------------------- fixtures

let cacheDir: string;
let store: MemoryObjectStore;
let manifestKey: string;
const BATCHES = 4;
const TRAIN_IMAGES = 400;

before(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'cvc-worker-test-'));
  store = createMemoryObjectStore();
  // A real (tiny) imported dataset, so the worker's shard download and checks run as in production.
  const ds: Dataset = tinyDataset();
  const prefix = 'datasets/tiny/v1';
  const m = await importDataset(ds, { folds: 3, scheme: 'stratified', seed: 1 }, async (name, chunks) => {
    const r = await store.put(`${prefix}/${name}`, chunks);
    return { bytes: r.bytes, sha256: r.sha256 };
  });
  manifestKey = `${prefix}/manifest.json`;
  await store.put(manifestKey, new TextEncoder().encode(JSON.stringify(m)));
});
after(async () => {
  await rm(cacheDir, { recursive: true, force: true });
});

const RUN = 'run-1';
const spec = (over: Partial<RunSpec> = {}): RunSpec =>
  RunSpec.fromPartial({ dataset: 'tiny', model: 'seed-mnist', folds: 3, epochs: 2, batchSize: 100, learningRate: 1e-3, seed: 7, upsample: 'nearest', ...over });

/** A gRPC error as grpc-js rejects with it. */
function grpcError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

// ---------------------------------------------------------------- fake coordinator

type Call =
  | { m: 'startAttempt'; req: StartAttemptRequest }
  | { m: 'reportEpoch'; attempt: AttemptRef; metrics: EpochMetrics }
  | { m: 'reportProgress'; attempt: AttemptRef; progress: FoldProgress }
  | { m: 'uploadCheckpoint'; attempt: AttemptRef; epoch: number; kind: CheckpointKind; bytes: Uint8Array }
  | { m: 'finishFold'; req: FinishFoldRequest }
  | { m: 'failFold'; req: FailFoldRequest }
  | { m: 'reportBadCheckpoint'; req: ReportBadCheckpointRequest };
type Method = Call['m'];

/** Records every call; `fail` makes the next calls of a method reject; `hold` makes reportProgress hang until released. */
class FakeCoordinator implements CoordinatorApi {
  readonly calls: Call[] = [];
  private readonly failures = new Map<Method, ServiceError[]>();
  holdProgress = false;
  /** reportEpoch answers Ack.stop for this epoch (a fold paused at a sweep's rung, or its run stopped early). */
  stopAtEpoch: number | undefined;
  /** reportProgress answers Ack.stop from this report on (1-based). */
  stopAtProgress: number | undefined;
  /** The answers of the next reportBadCheckpoint calls, in turn (then: start fresh). */
  readonly fallbacks: ReportBadCheckpointResponse[] = [];
  /** The answer of finishFold (default: recorded). */
  finishAnswer: unknown = {};
  /** Called as finishFold is recorded, before it answers. */
  onFinish: (() => Promise<void>) | undefined;
  private readonly held: (() => void)[] = [];

  constructor(private readonly answer: (req: StartAttemptRequest) => StartAttemptResponse = () => started()) {}

  /** The next `times` calls of `m` reject with `err`. */
  fail(m: Method, err: ServiceError, times = 1): this {
    this.failures.set(m, [...(this.failures.get(m) ?? []), ...Array.from({ length: times }, () => err)]);
    return this;
  }

  of<M extends Method>(m: M): Extract<Call, { m: M }>[] {
    return this.calls.filter((c): c is Extract<Call, { m: M }> => c.m === m);
  }

  releaseProgress(): void {
    for (const r of this.held.splice(0)) r();
  }

  private async record(c: Call): Promise<void> {
    this.calls.push(c);
    await Promise.resolve();
    const err = this.failures.get(c.m)?.shift();
    if (err) throw err;
  }

  async startAttempt(req: StartAttemptRequest): Promise<StartAttemptResponse> {
    await this.record({ m: 'startAttempt', req });
    return this.answer(req);
  }
  async reportEpoch(attempt: AttemptRef, metrics: EpochMetrics): Promise<unknown> {
    await this.record({ m: 'reportEpoch', attempt, metrics });
    return metrics.epoch === this.stopAtEpoch ? { stop: true, reason: `paused at epoch ${metrics.epoch}` } : { stop: false, reason: '' };
  }
  async reportProgress(attempt: AttemptRef, progress: FoldProgress): Promise<unknown> {
    await this.record({ m: 'reportProgress', attempt, progress });
    if (this.holdProgress) await new Promise<void>((r) => this.held.push(r));
    if (this.stopAtProgress !== undefined && this.of('reportProgress').length >= this.stopAtProgress)
      return { stop: true, reason: 'run stopped early: asha rung 1' };
    return {};
  }
  async uploadCheckpoint(attempt: AttemptRef, epoch: number, kind: CheckpointKind, bytes: Uint8Array): Promise<{ key: string; size: number }> {
    await this.record({ m: 'uploadCheckpoint', attempt, epoch, kind, bytes });
    return {
      key: `runs/${attempt.runId}/folds/${attempt.fold}/${kind === CheckpointKind.CHECKPOINT_KIND_BEST ? 'best' : `epoch-${epoch}`}.ckpt`,
      size: bytes.length,
    };
  }
  async finishFold(req: FinishFoldRequest): Promise<unknown> {
    await this.record({ m: 'finishFold', req });
    await this.onFinish?.();
    return this.finishAnswer;
  }
  async failFold(req: FailFoldRequest): Promise<unknown> {
    return this.record({ m: 'failFold', req });
  }
  async reportBadCheckpoint(req: ReportBadCheckpointRequest): Promise<ReportBadCheckpointResponse> {
    await this.record({ m: 'reportBadCheckpoint', req });
    return this.fallbacks.shift() ?? { resumeCheckpoint: '', resumeEpoch: 0 };
  }
}

function started(over: Partial<StartAttemptResponse> = {}): StartAttemptResponse {
  return { proceed: true, token: 'tok-1', spec: spec(), datasetVersion: 'v1', manifest: manifestKey, resumeCheckpoint: '', reason: '', ...over };
}

// ---------------------------------------------------------------- fake trainer

/** Called before each batch (epoch 1-based, batch 0-based): advance a clock, stop the worker, throw. */
type BatchHook = (epoch: number, batch: number) => void;

/** Called as an evaluation starts, with its signal; the evaluation waits for it (a long one: stop the worker, wait for the abort). */
type EvaluateHook = (signal: AbortSignal | undefined) => Promise<void>;

/** A trainer that "trains" BATCHES batches per epoch and checkpoints {epochsDone, epochs} as JSON. */
class FakeTrainer implements WorkerTrainer {
  bestEpoch: { epoch: number; valLoss: number } | null = null;
  disposed = false;
  fitCallbacks: WorkerFitCallbacks | undefined;

  constructor(
    public epochsDone: number,
    readonly epochs: number,
    private readonly onBatch: BatchHook,
    private readonly onEvaluate?: EvaluateHook,
  ) {}

  async fit(_data: { train: ImageSet; val: ImageSet }, cb: WorkerFitCallbacks): Promise<unknown> {
    this.fitCallbacks = cb;
    const per = TRAIN_IMAGES / BATCHES;
    for (let epoch = this.epochsDone + 1; epoch <= this.epochs; epoch++) {
      for (let b = 0; b < BATCHES; b++) {
        throwIfAborted(cb.signal, `epoch ${epoch}`);
        this.onBatch(epoch, b);
        const p: BatchProgress = { epoch, epochs: this.epochs, images: (b + 1) * per, totalImages: TRAIN_IMAGES, loss: 0.5, imagesPerSec: 100 };
        cb.onBatch?.(p);
        // As the real trainer does: let timers and I/O (the progress report) run between batches.
        await new Promise((r) => setImmediate(r));
      }
      this.epochsDone = epoch;
      this.bestEpoch = { epoch, valLoss: 1 / epoch };
      // 3 s of training: with one clock second per batch, 1 s of the epoch went elsewhere (validation, say).
      const r: EpochRecord = { epoch, loss: 1 / epoch, valLoss: 1 / epoch, valMse: 0.1, seconds: 3, imagesPerSec: 100 };
      await cb.onEpochEnd?.(r);
    }
    return [];
  }
  restoreBest(): void {}
  async evaluate(set: ImageSet, opts: { signal?: AbortSignal } = {}): Promise<{ loss: number; mse: number; count: number }> {
    await this.onEvaluate?.(opts.signal);
    return { loss: 0.25, mse: 0.05, count: set.count };
  }
  checkpoint(): Promise<Uint8Array> {
    return Promise.resolve(new TextEncoder().encode(JSON.stringify({ epochsDone: this.epochsDone, epochs: this.epochs })));
  }
  dispose(): void {
    this.disposed = true;
  }
}

class FakeTrainers implements TrainerFactory {
  readonly created: TrainConfigInput[] = [];
  readonly resumed: { bytes: Uint8Array; name: string; opts: { epochs?: number } }[] = [];
  readonly trainers: FakeTrainer[] = [];
  onBatch: BatchHook = () => {};
  onEvaluate: EvaluateHook | undefined;

  create(config: TrainConfigInput): WorkerTrainer {
    this.created.push(config);
    return this.add(
      new FakeTrainer(
        0,
        config.epochs ?? 100,
        (e, b) => this.onBatch(e, b),
        (sig) => this.onEvaluate?.(sig) ?? Promise.resolve(),
      ),
    );
  }
  resume(bytes: Uint8Array, name: string, opts: { epochs?: number }): Promise<WorkerTrainer> {
    this.resumed.push({ bytes, name, opts });
    let state: { epochsDone: number; epochs: number };
    try {
      state = JSON.parse(new TextDecoder().decode(bytes)) as { epochsDone: number; epochs: number };
    } catch (err) {
      return Promise.reject(new ModelError('CHECKPOINT_CORRUPT', `${name}: not a checkpoint`, { cause: err }));
    }
    return Promise.resolve(this.add(new FakeTrainer(state.epochsDone, opts.epochs ?? state.epochs, (e, b) => this.onBatch(e, b))));
  }
  private add(t: FakeTrainer): FakeTrainer {
    this.trainers.push(t);
    return t;
  }
}

// ---------------------------------------------------------------- harness

/** What the worker did with each delivery it got (a spy over the memory queue's deliveries). */
type Settled =
  | { fold: number; delivery: number; how: 'ack' }
  | { fold: number; delivery: number; how: 'nak'; delayMs: number | undefined }
  | { fold: number; delivery: number; how: 'term'; reason: string };

/**
 * Wraps the memory queue: records how each delivery was settled, and stops
 * the worker once the queue has nothing to deliver, so `run()` returns when
 * the work is done.
 */
function spyQueue(
  inner: MemoryTaskQueue,
  stop: () => void,
): {
  queue: TaskQueue;
  settled: Settled[];
  pullFailures: Error[];
  pullHooks: (() => void)[];
  ackFailures: Error[];
} {
  const settled: Settled[] = [];
  const pullFailures: Error[] = [];
  const pullHooks: (() => void)[] = [];
  const ackFailures: Error[] = [];
  const wrap = (d: TaskDelivery): TaskDelivery => {
    const at = { fold: d.task.fold, delivery: d.delivery };
    return {
      task: d.task,
      delivery: d.delivery,
      maxDeliver: d.maxDeliver,
      ack: () => {
        const err = ackFailures.shift();
        if (err) return Promise.reject(err);
        settled.push({ ...at, how: 'ack' });
        return d.ack();
      },
      nak: (delayMs) => (settled.push({ ...at, how: 'nak', delayMs }), d.nak(delayMs)),
      term: (reason) => (settled.push({ ...at, how: 'term', reason }), d.term(reason)),
      working: () => d.working(),
    };
  };
  const queue: TaskQueue = {
    maxDeliver: inner.maxDeliver,
    ackWaitMs: inner.ackWaitMs,
    maxDeliveriesSubject: inner.maxDeliveriesSubject,
    enqueue: (t) => inner.enqueue(t),
    depth: () => inner.depth(),
    onGivenUp: (h) => inner.onGivenUp(h),
    next: async (ms) => {
      const err = pullFailures.shift();
      if (err) throw err;
      const d = await inner.next(ms);
      pullHooks.shift()?.();
      if (!d) stop();
      return d ? wrap(d) : undefined;
    },
  };
  return { queue, settled, pullFailures, pullHooks, ackFailures };
}

/** A logger that keeps every line. */
function memoryLogger(): Logger & { lines: { level: string; msg: string; fields?: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, ...(fields ? { fields } : {}) });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

interface Setup {
  worker: Worker;
  coordinator: FakeCoordinator;
  trainers: FakeTrainers;
  queue: MemoryTaskQueue;
  settled: Settled[];
  /** Errors the next pulls throw, one each. */
  pullFailures: Error[];
  /** Called as the next pulls return (after the task was taken), one each. */
  pullHooks: (() => void)[];
  /** Errors the next acks reject with, one each (the task stays in flight). */
  ackFailures: Error[];
  logger: ReturnType<typeof memoryLogger>;
  outcomes: string[];
}

function setup(opts: { coordinator?: FakeCoordinator; maxDeliver?: number; deps?: Partial<WorkerDeps> } = {}): Setup {
  const queue = createMemoryTaskQueue({ maxDeliver: opts.maxDeliver ?? 3 });
  const coordinator = opts.coordinator ?? new FakeCoordinator();
  const trainers = new FakeTrainers();
  const logger = memoryLogger();
  const outcomes: string[] = [];
  // The closure runs only once run() pulls, after `worker` is initialised.
  const spy = spyQueue(queue, () => worker.stop());
  const worker = new Worker({
    id: 'w1',
    queue: spy.queue,
    store,
    coordinator,
    cacheDir,
    logger,
    trainers,
    pollMs: 5,
    pullRetryMs: 1,
    random: () => 1,
    onAttempt: (o) => outcomes.push(o),
    ...opts.deps,
  });
  return {
    worker,
    coordinator,
    trainers,
    queue,
    settled: spy.settled,
    pullFailures: spy.pullFailures,
    pullHooks: spy.pullHooks,
    ackFailures: spy.ackFailures,
    logger,
    outcomes,
  };
}

const task: FoldTask = { runId: RUN, fold: 1 };

// ---------------------------------------------------------------- tests

test('a fresh fold: the trainer is created from the run spec, every epoch is reported and checkpointed, then the best checkpoint and the final metrics, and the task is acked', async () => {
  const s = setup();
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(
    s.trainers.created,
    [{ model: 'seed-mnist', epochs: 2, batchSize: 100, learningRate: 1e-3, upsample: 'nearest', seed: 8 }],
    'seed is the spec seed + the fold',
  );
  assert.equal(s.trainers.resumed.length, 0);
  assert.deepEqual(
    s.coordinator.of('startAttempt').map((c) => c.req),
    [{ runId: RUN, fold: 1, worker: 'w1', delivery: 1 }],
  );
  assert.deepEqual(
    s.coordinator.of('reportEpoch').map((c) => [c.attempt.token, c.metrics.epoch]),
    [
      ['tok-1', 1],
      ['tok-1', 2],
    ],
  );
  assert.deepEqual(
    s.coordinator.of('uploadCheckpoint').map((c) => [c.epoch, c.kind]),
    [
      [1, CheckpointKind.CHECKPOINT_KIND_EPOCH],
      [2, CheckpointKind.CHECKPOINT_KIND_EPOCH],
      [2, CheckpointKind.CHECKPOINT_KIND_BEST],
    ],
  );
  const fin = s.coordinator.of('finishFold');
  assert.equal(fin.length, 1);
  assert.equal(fin[0]?.req.bestEpoch, 2);
  assert.deepEqual(fin[0]?.req.test, { loss: 0.25, mse: 0.05, count: 4 });
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'ack' }]);
  assert.equal(s.queue.record(task)?.state, 'acked');
  assert.deepEqual(s.outcomes, ['started', 'succeeded']);
  assert.ok(s.trainers.trainers[0]?.disposed);
});

test("a redelivered task resumes from the fold checkpoint in the store: resume gets its bytes and the run's epoch count, and only the remaining epochs are trained", async () => {
  const key = `runs/${RUN}/folds/1/epoch-1.ckpt`;
  const bytes = new TextEncoder().encode(JSON.stringify({ epochsDone: 1, epochs: 2 }));
  await store.put(key, bytes);
  const s = setup({ coordinator: new FakeCoordinator(() => started({ token: 'tok-2', resumeCheckpoint: key, spec: spec({ epochs: 3 }) })) });
  await s.queue.enqueue(task);
  // The first delivery's worker died: its ack wait ran out.
  assert.ok(await s.queue.next(1));
  assert.equal(s.queue.expireInFlight(), 1);
  await s.worker.run();
  assert.equal(s.coordinator.of('startAttempt')[0]?.req.delivery, 2);
  assert.equal(s.trainers.created.length, 0);
  assert.equal(s.trainers.resumed.length, 1);
  assert.deepEqual(s.trainers.resumed[0]?.bytes, bytes);
  assert.equal(s.trainers.resumed[0]?.name, key);
  assert.deepEqual(s.trainers.resumed[0]?.opts, { epochs: 3 });
  assert.deepEqual(
    s.coordinator.of('reportEpoch').map((c) => c.metrics.epoch),
    [2, 3],
  );
  assert.equal(s.coordinator.of('finishFold')[0]?.req.attempt?.token, 'tok-2');
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 2, how: 'ack' }]);
});

test('a corrupt resume checkpoint is reported and the fold falls back to the older one the coordinator offers (warning naming it); only the epochs after that are trained', async () => {
  const bad = `runs/${RUN}/folds/1/epoch-2.ckpt`;
  const older = `runs/${RUN}/folds/1/epoch-1.ckpt`;
  await store.put(bad, new TextEncoder().encode('rotten bytes'));
  await store.put(older, new TextEncoder().encode(JSON.stringify({ epochsDone: 1, epochs: 3 })));
  const coordinator = new FakeCoordinator(() => started({ resumeCheckpoint: bad, spec: spec({ epochs: 3 }) }));
  coordinator.fallbacks.push({ resumeCheckpoint: older, resumeEpoch: 1 });
  const s = setup({ coordinator });
  await s.queue.enqueue(task);
  await s.worker.run();
  const reports = s.coordinator.of('reportBadCheckpoint');
  assert.equal(reports.length, 1);
  assert.equal(reports[0]?.req.checkpoint, bad);
  assert.equal(reports[0]?.req.attempt?.token, 'tok-1');
  assert.match(reports[0]?.req.reason ?? '', /CHECKPOINT_CORRUPT|not a checkpoint/);
  assert.deepEqual(
    s.trainers.resumed.map((r) => r.name),
    [bad, older],
  );
  assert.deepEqual(
    s.coordinator.of('reportEpoch').map((c) => c.metrics.epoch),
    [2, 3],
  );
  const warn = s.logger.lines.find((l) => l.msg === 'the resume checkpoint cannot be used; falling back');
  assert.equal(warn?.level, 'warn');
  assert.equal(warn?.fields?.['checkpoint'], bad);
  assert.equal(warn?.fields?.['fallback'], older);
  assert.equal(s.coordinator.of('failFold').length, 0);
  assert.deepEqual(s.outcomes, ['started', 'succeeded']);
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'ack' }]);
});

test('a resume checkpoint that is gone from the store (NOT_FOUND), with no older one: the fold starts fresh after reporting it, instead of failing', async () => {
  const gone = `runs/${RUN}/folds/1/epoch-9-gone.ckpt`;
  const s = setup({ coordinator: new FakeCoordinator(() => started({ resumeCheckpoint: gone })) });
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.equal(s.coordinator.of('reportBadCheckpoint')[0]?.req.checkpoint, gone);
  assert.match(s.coordinator.of('reportBadCheckpoint')[0]?.req.reason ?? '', /NOT_FOUND|no such object/);
  assert.equal(s.trainers.created.length, 1, 'a fresh trainer');
  assert.deepEqual(
    s.coordinator.of('reportEpoch').map((c) => c.metrics.epoch),
    [1, 2],
  );
  assert.equal(s.logger.lines.find((l) => l.msg === 'the resume checkpoint cannot be used; falling back')?.fields?.['fallback'], 'a fresh start');
  assert.deepEqual(s.outcomes, ['started', 'succeeded']);
});

test("the trainer is built from the spec's model config (the coordinator's resolved one); a config that is not JSON fails the attempt", async () => {
  const config = { input: { height: 8, width: 8, channels: 1 }, encoder: [{ filters: 4, pool: 2 }], codeSize: 3, upsample: 'bilinear' };
  const s = setup({ coordinator: new FakeCoordinator(() => started({ spec: spec({ model: 'custom', modelConfigJson: JSON.stringify(config) }) })) });
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(s.trainers.created, [{ model: 'custom', modelConfig: config, epochs: 2, batchSize: 100, learningRate: 1e-3, seed: 8 }]);

  const bad = setup({ coordinator: new FakeCoordinator(() => started({ spec: spec({ model: 'custom', modelConfigJson: '{ nope' }) })) });
  await bad.queue.enqueue(task);
  await bad.worker.run();
  assert.equal(bad.trainers.created.length, 0, 'no trainer was built');
  assert.match(bad.coordinator.of('failFold')[0]?.req.error ?? '', /model config that is not JSON/);
});

test('a run spec with an unresolved field (the coordinator resolves every one) fails the attempt, naming it, instead of training on a default', async () => {
  const s = setup({ coordinator: new FakeCoordinator(() => started({ spec: spec({ seed: undefined }) })) });
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.equal(s.trainers.created.length, 0, 'no trainer was built');
  const failed = s.coordinator.of('failFold');
  assert.equal(failed.length, 1);
  assert.match(failed[0]?.req.error ?? '', /unresolved fields/);
});

test('stop() mid-fit (SIGTERM) hands the task back at once: nak without delay, not failed, and run() returns', async () => {
  const s = setup();
  s.trainers.onBatch = (epoch, batch) => {
    if (epoch === 2 && batch === 1) s.worker.stop();
  };
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'nak', delayMs: undefined }]);
  assert.equal(s.queue.record(task)?.state, 'pending', 'back in the queue for another worker');
  assert.deepEqual(
    s.coordinator.of('reportEpoch').map((c) => c.metrics.epoch),
    [1],
    'epoch 1 was reported (and checkpointed) before the stop',
  );
  assert.equal(s.coordinator.of('failFold').length, 0);
  assert.equal(s.coordinator.of('finishFold').length, 0);
  assert.deepEqual(s.outcomes, ['started', 'interrupted']);
  assert.ok(s.trainers.trainers[0]?.disposed);
});

/** Rejects with CancelledError once `signal` aborts; never settles without one (a download or an evaluation that takes very long). */
function untilAborted(signal: AbortSignal | undefined, what: string): Promise<never> {
  return new Promise((_resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError(what));
    signal?.addEventListener('abort', () => reject(new CancelledError(what)), { once: true });
  });
}

test(
  'stop() during a shard download that never ends aborts it: the task is handed back at once (nak), nothing is cached, and run() returns',
  { timeout: 10_000 },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cvc-worker-stop-dl-'));
    try {
      const running: { worker?: Worker } = {};
      const slow: ObjectStore = {
        ...store,
        getBytes: (key, opts) => {
          if (!key.endsWith('.cvcs')) return store.getBytes(key, opts);
          running.worker?.stop();
          return untilAborted(opts?.signal, `reading ${key}`);
        },
      };
      const s = setup({ deps: { store: slow, cacheDir: dir } });
      running.worker = s.worker;
      await s.queue.enqueue(task);
      await s.worker.run();
      assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'nak', delayMs: undefined }]);
      assert.deepEqual(s.outcomes, ['started', 'interrupted']);
      assert.equal(s.coordinator.of('failFold').length, 0);
      assert.deepEqual(await readdir(dir), [], 'no shard (whole or partial) in the cache');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);

test('stop() during the final evaluation ends it: no best checkpoint, no FinishFold, the task is handed back at once (nak)', { timeout: 10_000 }, async () => {
  const s = setup();
  s.trainers.onEvaluate = (signal) => {
    s.worker.stop();
    return untilAborted(signal, 'the evaluation');
  };
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'nak', delayMs: undefined }]);
  assert.deepEqual(s.outcomes, ['started', 'interrupted']);
  assert.equal(s.coordinator.of('finishFold').length, 0);
  assert.equal(s.coordinator.of('failFold').length, 0);
  assert.ok(!s.coordinator.of('uploadCheckpoint').some((c) => c.kind === CheckpointKind.CHECKPOINT_KIND_BEST));
  assert.ok(s.trainers.trainers[0]?.disposed);
});

for (const code of [status.UNAUTHENTICATED, status.PERMISSION_DENIED]) {
  test(`credentials refused (${status[code]}) at StartAttempt: the task is handed back, not failed, and run() rejects`, async () => {
    const s = setup({ coordinator: new FakeCoordinator().fail('startAttempt', grpcError(code, 'bad token')) });
    await s.queue.enqueue(task);
    await s.queue.enqueue({ runId: RUN, fold: 2 });
    await assert.rejects(s.worker.run(), (e: unknown) => (e as ServiceError).code === code);
    assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'nak', delayMs: 5000 }]);
    assert.equal(s.coordinator.of('startAttempt').length, 1, 'no further task is pulled');
    assert.equal(s.coordinator.of('failFold').length, 0);
    assert.equal(s.trainers.created.length, 0);
  });
}

test('a report refused as a stale token (FAILED_PRECONDITION: another attempt owns the fold) abandons the attempt: no failFold, no ack/nak/term, the worker goes on', async () => {
  const s = setup({ coordinator: new FakeCoordinator().fail('reportEpoch', grpcError(status.FAILED_PRECONDITION, 'stale attempt token')) });
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(s.settled, [], 'the delivery is left to its new owner');
  assert.equal(s.coordinator.of('failFold').length, 0, "the new owner's fold is not failed");
  assert.equal(s.coordinator.of('uploadCheckpoint').length, 0);
  assert.equal(s.coordinator.of('finishFold').length, 0);
  assert.deepEqual(s.outcomes, ['started', 'abandoned']);
  assert.ok(s.trainers.trainers[0]?.disposed);
  assert.ok(s.logger.lines.some((l) => l.level === 'warn' && /another attempt owns this fold/.test(l.msg)));
  // Nobody else held it here: after the ack wait it comes back, like any unacknowledged delivery.
  assert.equal(s.queue.record(task)?.state, 'in-flight');
  assert.equal(s.queue.expireInFlight(), 1);
  assert.equal((await s.queue.next(1))?.delivery, 2);
});

test('a stale token before any attempt exists is an ordinary failure (nak with backoff)', async () => {
  const s = setup({ coordinator: new FakeCoordinator().fail('startAttempt', grpcError(status.FAILED_PRECONDITION, 'dataset catalog corrupt')) });
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'nak', delayMs: 2000 }]);
  assert.equal(s.coordinator.of('failFold').length, 0, 'no attempt to fail');
});

test('a failing pull (NATS unreachable) is logged and retried; the task is then trained', async () => {
  const s = setup();
  s.pullFailures.push(new Error('CONNECTION_REFUSED'), new Error('TIMEOUT'));
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(
    s.logger.lines.filter((l) => l.msg === 'pulling a task failed; retrying').map((l) => l.fields?.['error']),
    ['CONNECTION_REFUSED', 'TIMEOUT'],
  );
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'ack' }]);
});

test("the coordinator unreachable past the client's retries (UNAVAILABLE, DEADLINE_EXCEEDED) at StartAttempt: the delivery is held, not handed back (each one counts towards max_deliver), until the coordinator answers", async () => {
  const s = setup({
    coordinator: new FakeCoordinator()
      .fail('startAttempt', grpcError(status.UNAVAILABLE, 'connect ECONNREFUSED'), 3)
      .fail('startAttempt', grpcError(status.DEADLINE_EXCEEDED, 'deadline exceeded')),
  });
  await s.queue.enqueue(task);
  await s.queue.enqueue({ runId: RUN, fold: 2 });
  await s.worker.run();
  assert.deepEqual(s.settled, [
    { fold: 1, delivery: 1, how: 'ack' },
    { fold: 2, delivery: 1, how: 'ack' },
  ]);
  assert.deepEqual(
    s.coordinator.of('startAttempt').map((c) => [c.req.fold, c.req.delivery]),
    [
      [1, 1],
      [1, 1],
      [1, 1],
      [1, 1],
      [1, 1],
      [2, 1],
    ],
    'fold 1 was started on its first delivery once the coordinator answered',
  );
  assert.equal(s.coordinator.of('failFold').length, 0, 'no attempt was started, so none is failed');
  const held = s.logger.lines.filter((l) => l.msg === 'the coordinator is unreachable; holding the task until it answers');
  assert.equal(held.length, 4);
  assert.ok(held.every((l) => l.level === 'warn' && l.fields?.['run'] === RUN && l.fields?.['fold'] === 1));
});

test(
  'a coordinator that takes calls and never answers (hung) holds a task only coordinatorHungMs: each try ends at its deadline, then the task is handed back with backoff',
  { timeout: 20_000 },
  async () => {
    // A real gRPC server whose handlers never call back.
    const server = new Server();
    const never = (): void => {};
    server.addService(WorkerServiceService, {
      startAttempt: never,
      reportEpoch: never,
      reportProgress: never,
      finishFold: never,
      failFold: never,
      reportBadCheckpoint: never,
      uploadCheckpoint: never,
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const client = new CoordinatorClient(
      `127.0.0.1:${port}`,
      { credentials: credentials.createInsecure() },
      { deadlineMs: 100, initialDelayMs: 1, maxDelayMs: 5, callDeadlineMs: 50 },
    );
    const s = setup({ deps: { coordinator: client, coordinatorHungMs: 300 } });
    await s.queue.enqueue(task);
    // Without the limit the worker would hold the task for good: stopped here, it hands it back at once (no backoff).
    const guard = setTimeout(() => s.worker.stop(), 10_000);
    try {
      await s.worker.run();
    } finally {
      clearTimeout(guard);
      client.close();
      server.forceShutdown();
    }
    assert.equal(s.settled.length, 1);
    assert.equal(s.settled[0]?.how, 'nak');
    assert.ok(s.settled[0]?.how === 'nak' && (s.settled[0].delayMs ?? 0) > 0, 'with backoff');
    assert.equal(s.trainers.created.length, 0);
    const failed = s.logger.lines.find((l) => l.msg === 'fold attempt failed');
    assert.match(String(failed?.fields?.['error']), /DEADLINE_EXCEEDED|Deadline exceeded/);
    assert.ok(s.logger.lines.some((l) => l.msg === 'the coordinator is unreachable; holding the task until it answers'));
  },
);

/** A worker whose `call` meets an unreachable coordinator: run until it was tried 3 times, then stop()ped. */
async function stopWhileHeld(call: 'startAttempt' | 'reportEpoch'): Promise<Setup> {
  const s = setup({ coordinator: new FakeCoordinator().fail(call, grpcError(status.UNAVAILABLE, 'connect ECONNREFUSED'), 1000) });
  await s.queue.enqueue(task);
  let done = false;
  const running = s.worker.run().finally(() => {
    done = true;
  });
  while (!done && s.coordinator.of(call).length < 3) await new Promise((r) => setImmediate(r));
  s.worker.stop();
  await running;
  return s;
}

test('stop() while the delivery is held for an unreachable coordinator hands it back at once', async () => {
  const s = await stopWhileHeld('startAttempt');
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'nak', delayMs: undefined }]);
  assert.deepEqual(s.outcomes, ['interrupted']);
  assert.equal(s.queue.record(task)?.state, 'pending');
});

test('a failed attempt with deliveries left: failFold(final=false) and a nak with backoff growing by delivery', async () => {
  const s = setup({ maxDeliver: 3 });
  s.trainers.onBatch = (epoch, batch) => {
    if (epoch === 1 && batch === 2) throw new Error('kernel exploded');
  };
  await s.queue.enqueue(task);
  await s.worker.run();
  const failed = s.coordinator.of('failFold');
  assert.equal(failed.length, 1);
  assert.deepEqual(failed[0]?.req, { attempt: { runId: RUN, fold: 1, token: 'tok-1', jobId: '' }, error: 'kernel exploded', final: false });
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'nak', delayMs: 2000 }]);
  assert.deepEqual(s.outcomes, ['started', 'failed']);
  // On the second delivery the wait doubles.
  const s2 = setup({ maxDeliver: 3 });
  s2.trainers.onBatch = s.trainers.onBatch;
  await s2.queue.enqueue(task);
  assert.ok(await s2.queue.next(1));
  s2.queue.expireInFlight();
  await s2.worker.run();
  assert.deepEqual(
    s2.coordinator.of('failFold').map((c) => c.req.final),
    [false],
  );
  assert.deepEqual(s2.settled, [{ fold: 1, delivery: 2, how: 'nak', delayMs: 4000 }]);
});

test('a failed attempt on the last delivery: failFold(final=true) and the task is termed with the reason', async () => {
  const s = setup({ maxDeliver: 1 });
  s.trainers.onBatch = () => {
    throw new Error('out of memory');
  };
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(
    s.coordinator.of('failFold').map((c) => c.req.final),
    [true],
  );
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'term', reason: 'out of memory' }]);
  assert.equal(s.queue.record(task)?.state, 'termed');
});

test('a NaN loss (LOSS_NOT_FINITE) is final on the first of 3 deliveries: another delivery would resume into the same NaN', async () => {
  const s = setup({ maxDeliver: 3 });
  s.trainers.onBatch = (epoch, batch) => {
    if (epoch === 1 && batch === 1) throw new ModelError('LOSS_NOT_FINITE', 'training loss became NaN at epoch 1; try a lower learning rate');
  };
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(
    s.coordinator.of('failFold').map((c) => c.req.final),
    [true],
  );
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'term', reason: 'training loss became NaN at epoch 1; try a lower learning rate' }]);
  assert.deepEqual(s.outcomes, ['started', 'nan_loss']);
});

test("on the last delivery a FailFold the coordinator never recorded: the task is nak'ed (max_deliver then gives the fold up), not termed", async () => {
  const s = setup({ maxDeliver: 1, coordinator: new FakeCoordinator().fail('failFold', grpcError(status.UNAVAILABLE, 'coordinator down')) });
  s.trainers.onBatch = () => {
    throw new Error('out of memory');
  };
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.equal(s.settled.length, 1);
  assert.equal(s.settled[0]?.how, 'nak', 'a term would raise no max-deliveries advisory and leave the fold open');
});

test('a failing failFold is logged, and the task is still handed back', async () => {
  const s = setup({
    coordinator: new FakeCoordinator()
      .fail('finishFold', grpcError(status.INTERNAL, 'disk full'))
      .fail('failFold', grpcError(status.UNAVAILABLE, 'coordinator down')),
  });
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'nak', delayMs: 2000 }]);
  assert.ok(
    s.logger.lines.some((l) => l.level === 'warn' && /reporting the failed attempt failed/.test(l.msg) && /coordinator down/.test(String(l.fields?.['error']))),
  );
});

test('a cancelled run (CANCELLED on a report) acks the task without failing the fold', async () => {
  const s = setup({ coordinator: new FakeCoordinator().fail('uploadCheckpoint', grpcError(status.CANCELLED, 'run run-1 was cancelled')) });
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'ack' }]);
  assert.equal(s.coordinator.of('failFold').length, 0);
  assert.equal(s.coordinator.of('reportEpoch').length, 1, 'training stopped at the refused checkpoint');
});

test("a CANCELLED without the coordinator's 'was cancelled' (a stream reset by a proxy) fails the attempt for a retry instead of dropping the task", async () => {
  const s = setup({
    maxDeliver: 3,
    coordinator: new FakeCoordinator().fail('uploadCheckpoint', grpcError(status.CANCELLED, 'Received RST_STREAM with code 8')),
  });
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(
    s.coordinator.of('failFold').map((c) => c.req.final),
    [false],
  );
  assert.equal(s.settled[0]?.how, 'nak');
});

test("metrics (main.ts's hooks): a fold task's series leave /metrics a retention after the task ended; the fold in training keeps its own", async () => {
  const clock = new ManualClock();
  const metrics = createWorkerMetrics('w1', { retentionMs: 600_000, clock });
  const s = setup({ deps: workerMetricsHooks(metrics) });
  // In fold 2's second epoch (its first epoch's series exist), well past fold 0's retention.
  s.trainers.onBatch = (epoch, batch) => {
    if (s.trainers.trainers.length === 2 && epoch === 2 && batch === 1) clock.advance(3_600_000);
  };
  await s.queue.enqueue({ runId: RUN, fold: 0 });
  await s.queue.enqueue({ runId: RUN, fold: 2 });
  await s.worker.run();
  assert.deepEqual(s.settled, [
    { fold: 0, delivery: 1, how: 'ack' },
    { fold: 2, delivery: 1, how: 'ack' },
  ]);
  let text = await metrics.registry.metrics();
  assert.doesNotMatch(text, /fold="0"/, 'the first task ended an hour before: its series went');
  for (const name of ['train_loss', 'val_loss', 'images_per_second', 'images_trained_total'])
    assert.match(text, new RegExp(`^cvc_worker_${name}\\{run="${RUN}",fold="2",worker="w1"\\} `, 'm'), `${name}: kept while live and for the retention`);
  clock.advance(600_000);
  text = await metrics.registry.metrics();
  assert.doesNotMatch(text, /fold="2"/);
  assert.match(text, /^cvc_worker_attempts_total\{state="succeeded",worker="w1"\} 2$/m, 'the counters without a task stay');
  metrics.retention.close();
});

test('images trained are counted as the batches of an epoch are done, not only at its end (the throughput panel moves within a long epoch)', async () => {
  const seen: { images: number; epochsReported: number }[] = [];
  const s = setup({
    deps: { onImages: (t, images) => seen.push({ images, epochsReported: s.coordinator.of('reportEpoch').length }), progressIntervalMs: 0 },
  });
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.ok(seen.filter((x) => x.epochsReported === 0).length > 1, `counted within epoch 1: ${JSON.stringify(seen)}`);
  assert.equal(
    seen.reduce((n, x) => n + x.images, 0),
    2 * TRAIN_IMAGES,
    'each image of the 2 epochs once',
  );
});

test('a task that needs no training (proceed=false) is acked without creating a trainer', async () => {
  const s = setup({ coordinator: new FakeCoordinator(() => started({ proceed: false, token: '', reason: 'fold 1 is FOLD_STATE_SUCCEEDED' })) });
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'ack' }]);
  assert.equal(s.trainers.created.length + s.trainers.resumed.length, 0);
  assert.deepEqual(s.outcomes, ['skipped']);
});

test('progress inside an epoch: reports go out at most once per interval on the injected clock, with images, pace, loss and the fold ETA', async () => {
  let clock = 1_000_000;
  const s = setup({ deps: { progressIntervalMs: 3000, now: () => clock } });
  // One second per batch: 4 batches an epoch, 2 epochs.
  s.trainers.onBatch = () => {
    clock += 1000;
  };
  await s.queue.enqueue(task);
  await s.worker.run();
  const reports = s.coordinator.of('reportProgress');
  // Batches end at t = 1..8 s: sent at 1 s, then 4 s (3 s later), then 7 s. From epoch 2 on the ETA adds the
  // 1 s per epoch spent outside training that epoch 1 took (4 s of wall time, 3 s of training).
  assert.deepEqual(
    reports.map((r) => [r.progress.epoch, r.progress.images, r.progress.updatedAtMs - 1_000_000, r.progress.etaSeconds]),
    [
      [1, 100, 1000, (300 + 400) / 100],
      [1, 400, 4000, 400 / 100],
      [2, 300, 7000, 100 / 100 + 1],
    ],
  );
  const first = reports[0]?.progress;
  assert.deepEqual(first, {
    epoch: 1,
    epochs: 2,
    images: 100,
    totalImages: 400,
    imagesPerSec: 100,
    loss: 0.5,
    etaSeconds: (300 + 400) / 100,
    updatedAtMs: 1_001_000,
  });
  assert.ok(reports.every((r) => r.attempt.token === 'tok-1'));
  // The trainer samples more often than the worker sends, so a report is never late by a whole interval.
  assert.equal(s.trainers.trainers[0]?.fitCallbacks?.progressIntervalMs, 750);
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'ack' }]);
});

test('progressIntervalMs 0 sends no progress and asks the trainer for none', async () => {
  const s = setup({ deps: { progressIntervalMs: 0 } });
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.equal(s.coordinator.of('reportProgress').length, 0);
  assert.equal(s.trainers.trainers[0]?.fitCallbacks?.onBatch, undefined);
  assert.equal(s.coordinator.of('finishFold').length, 1);
});

test('never more than one progress report in flight, and a hanging one does not hold up training', async () => {
  let clock = 0;
  const coordinator = new FakeCoordinator();
  coordinator.holdProgress = true;
  const s = setup({ coordinator, deps: { progressIntervalMs: 1000, now: () => clock } });
  s.trainers.onBatch = () => {
    clock += 5000;
  };
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.equal(s.coordinator.of('reportProgress').length, 1, 'every later sample came while the first was in flight');
  assert.equal(s.coordinator.of('finishFold').length, 1);
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'ack' }]);
  coordinator.releaseProgress();
});

test('failing progress reports are logged at debug and dropped, repeated failures once at warn; the fold still succeeds', async () => {
  let clock = 0;
  const coordinator = new FakeCoordinator().fail('reportProgress', grpcError(status.UNAVAILABLE, 'coordinator restarting'), 100);
  const s = setup({ coordinator, deps: { progressIntervalMs: 1000, now: () => clock } });
  s.trainers.onBatch = () => {
    clock += 1000;
  };
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.ok(s.coordinator.of('reportProgress').length >= 2, 'reports were tried');
  const dropped = s.logger.lines.filter((l) => l.msg === 'progress report failed; dropped');
  assert.ok(dropped.length >= 1);
  assert.ok(dropped.every((l) => l.level === 'debug' && /coordinator restarting/.test(String(l.fields?.['error']))));
  // Failing again and again: visible at warn, with the run, the fold and the gRPC code.
  const warned = s.logger.lines.filter((l) => l.level === 'warn' && /progress reports keep failing/.test(l.msg));
  assert.equal(warned.length, 1, 'rate-limited: once within the fold');
  assert.deepEqual([warned[0]?.fields?.['run'], warned[0]?.fields?.['fold'], warned[0]?.fields?.['code']], [RUN, 1, 'UNAVAILABLE']);
  assert.equal(s.coordinator.of('failFold').length, 0);
  assert.equal(s.coordinator.of('finishFold').length, 1);
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'ack' }]);
  assert.deepEqual(s.outcomes, ['started', 'succeeded']);
});

test('a stale token on a progress report is dropped too: the epoch reports decide', async () => {
  let clock = 0;
  const coordinator = new FakeCoordinator().fail('reportProgress', grpcError(status.FAILED_PRECONDITION, 'stale attempt token'));
  const s = setup({ coordinator, deps: { progressIntervalMs: 1000, now: () => clock } });
  s.trainers.onBatch = () => {
    clock += 1000;
  };
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.equal(s.coordinator.of('finishFold').length, 1);
  assert.deepEqual(s.outcomes, ['started', 'succeeded']);
});

test('Ack.stop on an epoch report: the epoch checkpoint is still uploaded, no evaluation or FinishFold, the task is acked (no retry)', async () => {
  const coordinator = new FakeCoordinator();
  coordinator.stopAtEpoch = 1;
  const s = setup({ coordinator });
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(
    s.coordinator.of('reportEpoch').map((c) => c.metrics.epoch),
    [1],
    'training stopped after the epoch that was answered stop',
  );
  assert.deepEqual(
    s.coordinator.of('uploadCheckpoint').map((c) => [c.kind, c.epoch]),
    [[CheckpointKind.CHECKPOINT_KIND_EPOCH, 1]],
  );
  assert.equal(s.coordinator.of('finishFold').length, 0);
  assert.equal(s.coordinator.of('failFold').length, 0);
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'ack' }]);
  assert.deepEqual(s.outcomes, ['started', 'stopped']);
  assert.equal(s.trainers.trainers[0]?.disposed, true);
});

test('Ack.stop on a progress report: training stops after the current batch, the task is acked and the next one taken', async () => {
  let clock = 0;
  const coordinator = new FakeCoordinator();
  coordinator.stopAtProgress = 1;
  const s = setup({ coordinator, deps: { progressIntervalMs: 1000, now: () => clock } });
  let batches = 0;
  s.trainers.onBatch = () => {
    clock += 1000;
    batches++;
  };
  await s.queue.enqueue(task);
  await s.queue.enqueue({ ...task, fold: 0 });
  await s.worker.run();
  // The first fold stops within its first epoch; the second fold is then taken (and stopped the same way).
  assert.deepEqual(
    s.settled.map((x) => [x.fold, x.how]),
    [
      [1, 'ack'],
      [0, 'ack'],
    ],
  );
  assert.equal(s.coordinator.of('reportEpoch').length, 0, 'no epoch was finished');
  assert.ok(batches < 2 * BATCHES, `stopped within the first epoch of each fold (${batches} batches)`);
  assert.equal(s.coordinator.of('finishFold').length + s.coordinator.of('failFold').length, 0);
  assert.deepEqual(s.outcomes, ['started', 'stopped', 'started', 'stopped']);
});

test('a stop answer to a progress report that arrives during the final phase does not relabel a fold whose FinishFold was recorded: it is counted and logged as done', async () => {
  let clock = 0;
  const coordinator = new FakeCoordinator();
  coordinator.holdProgress = true;
  coordinator.stopAtProgress = 1;
  // The report held since the first epoch is answered stop while FinishFold is on its way.
  coordinator.onFinish = async () => {
    coordinator.releaseProgress();
    await new Promise((r) => setImmediate(r));
  };
  const s = setup({ coordinator, deps: { progressIntervalMs: 1000, now: () => clock } });
  s.trainers.onBatch = () => {
    clock += 1000;
  };
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.equal(s.coordinator.of('finishFold').length, 1);
  assert.deepEqual(s.outcomes, ['started', 'succeeded']);
  assert.ok(s.logger.lines.some((l) => l.msg === 'fold done'));
  assert.ok(!s.logger.lines.some((l) => /stopped by the coordinator/.test(l.msg)));
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'ack' }]);
});

test('FinishFold answered stop (the run was stopped early before the result came; it is not recorded): the task is acked and counted as stopped', async () => {
  const coordinator = new FakeCoordinator();
  coordinator.finishAnswer = { stop: true, reason: 'run stopped early: asha rung 1' };
  const s = setup({ coordinator });
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(s.outcomes, ['started', 'stopped']);
  assert.equal(s.logger.lines.find((l) => /stopped by the coordinator/.test(l.msg))?.fields?.['reason'], 'run stopped early: asha rung 1');
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'ack' }]);
});

test('stop() while a pull waits (SIGTERM on an idle worker): a task that arrives after it is handed straight back, not trained', async () => {
  const s = setup();
  await s.queue.enqueue(task);
  // The pull returns the task only after the stop.
  s.pullHooks.push(() => s.worker.stop());
  await s.worker.run();
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'nak', delayMs: undefined }]);
  assert.equal(s.coordinator.of('startAttempt').length, 0, 'no attempt was started');
  assert.equal(s.trainers.created.length, 0);
  assert.equal(s.queue.record(task)?.state, 'pending', 'back in the queue for another worker');
});

test('stop() during the wait after a failed pull (NATS down) ends the wait at once', { timeout: 20_000 }, async () => {
  // A first wait of 5..10 minutes: without the wake-up, run() would outlive the test's timeout.
  const s = setup({ deps: { pullRetryMs: 600_000 } });
  s.pullFailures.push(new Error('CONNECTION_REFUSED'));
  const running = s.worker.run();
  while (!s.logger.lines.some((l) => l.msg === 'pulling a task failed; retrying')) await new Promise((r) => setImmediate(r));
  s.worker.stop();
  await running;
  assert.equal(s.coordinator.of('startAttempt').length, 0);
});

test('a failed ack after the fold finished (NATS reconnecting) is logged: the recorded result is not failed, nor the task handed back', async () => {
  const s = setup();
  s.ackFailures.push(new Error('TIMEOUT'));
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.equal(s.coordinator.of('finishFold').length, 1);
  assert.equal(s.coordinator.of('failFold').length, 0, 'a finished fold is not reported failed');
  assert.deepEqual(s.settled, [], 'neither nak nor term: the delivery comes back after ack_wait and is found done');
  assert.deepEqual(s.outcomes, ['started', 'succeeded']);
  assert.ok(
    s.logger.lines.some((l) => l.level === 'warn' && /acknowledging the task failed/.test(l.msg) && l.fields?.['run'] === RUN && l.fields?.['fold'] === 1),
  );
  assert.ok(!s.logger.lines.some((l) => l.level === 'error'), 'no "fold attempt failed"');
});

test('a failed ack of a task that needs no training is logged, not counted as a failed attempt', async () => {
  const s = setup({ coordinator: new FakeCoordinator(() => started({ proceed: false, token: '', reason: 'fold 1 is FOLD_STATE_SUCCEEDED' })) });
  s.ackFailures.push(new Error('TIMEOUT'));
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.deepEqual(s.settled, []);
  assert.deepEqual(s.outcomes, ['skipped']);
  assert.ok(!s.logger.lines.some((l) => l.level === 'error'));
});

test("the coordinator unreachable past the client's retries in the middle of a fold (an epoch report, a checkpoint, FinishFold): the attempt holds its delivery and goes on once it answers, instead of failing", async () => {
  const s = setup({
    coordinator: new FakeCoordinator()
      .fail('reportEpoch', grpcError(status.UNAVAILABLE, 'connect ECONNREFUSED'), 2)
      .fail('uploadCheckpoint', grpcError(status.DEADLINE_EXCEEDED, 'deadline exceeded'))
      .fail('finishFold', grpcError(status.UNAVAILABLE, 'connect ECONNREFUSED')),
  });
  await s.queue.enqueue(task);
  await s.worker.run();
  assert.equal(s.coordinator.of('failFold').length, 0, 'the attempt did not fail');
  assert.deepEqual(
    s.coordinator.of('reportEpoch').map((c) => c.metrics.epoch),
    [1, 1, 1, 2],
  );
  assert.equal(s.coordinator.of('finishFold').length, 2);
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'ack' }], 'one delivery, acked');
  assert.deepEqual(s.outcomes, ['started', 'succeeded']);
  const held = s.logger.lines.filter((l) => l.msg === 'the coordinator is unreachable; holding the task until it answers');
  assert.deepEqual(
    held.map((l) => l.fields?.['call']),
    ['ReportEpoch', 'ReportEpoch', 'UploadCheckpoint', 'FinishFold'],
  );
});

test('stop() while an epoch report is held for an unreachable coordinator ends the wait: the task is handed back at once', async () => {
  const s = await stopWhileHeld('reportEpoch');
  assert.deepEqual(s.settled, [{ fold: 1, delivery: 1, how: 'nak', delayMs: undefined }]);
  assert.deepEqual(s.outcomes, ['started', 'interrupted']);
  assert.equal(s.coordinator.of('failFold').length, 0);
});
