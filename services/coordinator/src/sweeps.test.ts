// The sweep manager over the in-memory queue and stores (@cvc/testkit), with
// a scripted worker that trains nothing: each epoch's validation loss is a
// function of the trial's learning rate, so the expected decisions are known.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { CheckpointKind, EpochMetrics, EvalMetrics, FoldState, RunSpec, RunState, SweepState, type AttemptRef, type SweepSpec } from '@cvc/proto';
import { MessagingError, type DocStore, type Versioned } from '@cvc/messaging';
import { createDatasetCatalog } from '@cvc/storage';
import { createMemoryDocStore, createMemoryObjectStore, createMemoryTaskQueue, type MemoryTaskQueue } from '@cvc/testkit';
import { Coordinator } from './coordinator.js';
import { CoordinatorError } from './errors.js';
import type { RunDoc } from './run-doc.js';
import { sweepKey, type SweepDoc } from './sweep-doc.js';
import { MAX_REASON_CHARS, SweepManager } from './sweeps.js';

const T = { timeout: 20_000 };
const DATASET = 'fashion-mnist';

async function world() {
  const store = createMemoryObjectStore();
  const queue = createMemoryTaskQueue({ maxDeliver: 3 });
  const runs = createMemoryDocStore<RunDoc>();
  const sweepDocs = createMemoryDocStore<SweepDoc>();
  await createDatasetCatalog(store).register(DATASET, {
    version: 'v1',
    folds: 2,
    scheme: 'stratified',
    seed: 42,
    limit: 200,
    manifest: `datasets/${DATASET}/v1/manifest.json`,
    height: 28,
    width: 28,
    channels: 1,
  });
  let clock = Date.UTC(2026, 0, 2, 3, 4, 5);
  const now = (): number => (clock += 1000);
  /** A coordinator with its sweep manager (a new pair is a restarted coordinator). */
  const start = () => {
    const c = new Coordinator({
      store,
      queue,
      runs,
      now,
      exportArtifacts: ({ run }) => Promise.resolve(`runs/${run.id}/encoder`),
      finalizeRetry: { initialMs: 1, maxMs: 4 },
    });
    const m = new SweepManager({ coordinator: c, sweeps: sweepDocs, now, retryMs: 5 });
    return { c, m };
  };
  return { store, queue, runs, sweepDocs, start };
}

/** Validation loss of a trial at an epoch: by learning rate, falling a little each epoch. */
const LOSS: Record<number, number> = { 1e-7: 0.9, 1e-4: 0.35, 1e-3: 0.2, 3e-4: 0.3 };
const lossAt = (lr: number, epoch: number, fold: number): number => (LOSS[lr] ?? 0.5) * (1 - 0.05 * epoch) + 0.001 * fold;

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
async function upload(c: Coordinator, a: AttemptRef, kind: CheckpointKind, epoch: number): Promise<void> {
  const data = new Uint8Array([epoch, 1, 2]);
  await c.uploadCheckpoint(
    { attempt: a, epoch, kind, size: data.length },
    (async function* () {
      yield await Promise.resolve(data);
    })(),
    () => sha(data),
  );
}

/**
 * One worker taking tasks until the queue is empty (and the sweeps idle):
 * resumes from the fold's last checkpoint, reports each epoch, stops when an
 * answer says stop. Returns the fold-epochs trained.
 */
async function work(c: Coordinator, m: SweepManager, queue: MemoryTaskQueue, o: { maxTasks?: number } = {}): Promise<number> {
  let trained = 0;
  for (let tasks = 0; tasks < (o.maxTasks ?? Infinity); tasks++) {
    await m.idle();
    await c.idle();
    const d = await queue.next(1);
    if (!d) break;
    const { runId, fold } = d.task;
    const s = await c.startAttempt({ runId, fold, worker: 'w', delivery: d.delivery });
    if (!s.proceed) {
      await d.ack();
      continue;
    }
    const a: AttemptRef = { runId, fold, token: s.token, jobId: '' };
    const from = (await c.getRun(runId)).folds[fold]?.lastCheckpointEpoch ?? 0;
    const epochs = s.spec?.epochs ?? 0;
    const lr = s.spec?.learningRate ?? 0;
    let stopped = false;
    for (let e = from + 1; e <= epochs; e++) {
      const v = lossAt(lr, e, fold);
      const ack = await c.reportEpoch(a, EpochMetrics.fromPartial({ epoch: e, loss: v, valLoss: v, valMse: v, seconds: 1, imagesPerSec: 10 }));
      trained++;
      await upload(c, a, CheckpointKind.CHECKPOINT_KIND_EPOCH, e);
      if (ack.stop) {
        stopped = true;
        break;
      }
    }
    if (!stopped) {
      await upload(c, a, CheckpointKind.CHECKPOINT_KIND_BEST, epochs);
      const v = lossAt(lr, epochs, fold);
      const ev = EvalMetrics.fromPartial({ loss: v, mse: v, count: 10 });
      await c.finishFold({ attempt: a, bestEpoch: epochs, train: ev, val: ev, test: ev });
    }
    await d.ack();
  }
  await m.idle();
  await c.idle();
  await m.idle();
  return trained;
}

const base = RunSpec.fromPartial({ dataset: DATASET, model: 'seed-mnist', folds: 2, epochs: 4 });
const fourConfigs = (over: Partial<SweepSpec> = {}): SweepSpec => ({
  name: 'lr',
  base,
  // The clearly worse learning rate first: it reaches the first rung before any other run.
  grid: [{ name: 'learning-rate', values: ['1e-7', '1e-4', '1e-3', '3e-4'] }],
  earlyStop: 'asha',
  rungs: [],
  ...over,
});
const summary = (decisions: readonly { trial: number; rung: number; stopped: boolean }[]) =>
  decisions.map((d) => `${d.trial}@${d.rung}:${d.stopped ? 'stop' : 'go'}`);

/** The folds queued again to resume at `rung`, in queue order. */
function resumedFolds(queue: MemoryTaskQueue, rung: number): number[] {
  return queue
    .records()
    .filter((r) => r.task.resumeAt === rung)
    .map((r) => r.task.fold);
}

/** `queue` whose enqueue rejects ('NATS blip') for the tasks `fails` picks. */
function blippingQueue(queue: MemoryTaskQueue, fails: (task: Parameters<MemoryTaskQueue['enqueue']>[0]) => boolean): MemoryTaskQueue {
  return { ...queue, enqueue: (task) => (fails(task) ? Promise.reject(new Error('NATS blip')) : queue.enqueue(task)) };
}

/** The first epoch's metrics (val loss 0.2) the tests below report. */
const EPOCH1 = EpochMetrics.fromPartial({ epoch: 1, loss: 0.2, valLoss: 0.2, valMse: 0.2, seconds: 1, imagesPerSec: 10 });

/** Starts an attempt of `fold` of `runId`, reports its first epoch and stores its checkpoint (as a worker does, even when told to stop). */
async function reportFirstEpoch(c: Coordinator, runId: string, fold: number): Promise<void> {
  const s = await c.startAttempt({ runId, fold, worker: 'w', delivery: 1 });
  const a: AttemptRef = { runId, fold, token: s.token, jobId: '' };
  await c.reportEpoch(a, EPOCH1);
  await upload(c, a, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1);
}

test('ASHA over 4 configs x 2 folds x 4 epochs: the worse runs stop at rung 1, the best one finishes and is the sweep best', T, async () => {
  const w = await world();
  const { c, m } = w.start();
  const s0 = await m.submitSweep(fourConfigs());
  assert.equal(s0.state, SweepState.SWEEP_STATE_RUNNING);
  assert.deepEqual(s0.rungs, [1, 3]);
  assert.deepEqual(
    s0.trials.map((t) => t.runId),
    [0, 1, 2, 3].map((i) => `${s0.id}-t${i}`),
  );
  const trained = await work(c, m, w.queue);
  const s = await m.getSweep(s0.id);
  assert.equal(s.state, SweepState.SWEEP_STATE_SUCCEEDED);
  assert.equal(s.bestTrial, 2, 'learning rate 1e-3');
  assert.equal(s.bestRunId, `${s0.id}-t2`);
  assert.deepEqual(
    s.trials.map((t) => RunState[t.state]),
    ['RUN_STATE_STOPPED', 'RUN_STATE_STOPPED', 'RUN_STATE_SUCCEEDED', 'RUN_STATE_STOPPED'],
  );
  assert.deepEqual(summary(s.decisions), ['0@1:go', '1@1:go', '2@1:go', '0@1:stop', '1@1:stop', '3@1:stop', '2@3:go']);
  const bad = await c.getRun(`${s0.id}-t0`);
  assert.equal(bad.sweepId, s0.id);
  assert.match(bad.stopReason, /^asha rung 1: mean val loss 0\.85\d* is in the worst 2 of 3 runs at this rung/);
  assert.deepEqual(
    bad.folds.map((f) => [FoldState[f.state], Math.max(...f.history.map((h) => h.epoch))]),
    [
      ['FOLD_STATE_STOPPED', 1],
      ['FOLD_STATE_STOPPED', 1],
    ],
  );
  assert.ok(
    bad.folds.every((f) => f.lastCheckpointEpoch === 1),
    'the rung checkpoint of a stopped run is kept',
  );
  assert.equal(s.trials[0]?.epochsReached, 1);
  assert.ok(Math.abs((s.trials[0]?.valLoss?.mean ?? 0) - 0.8555) < 1e-9, 'a stopped trial shows its score at its last rung');
  // 3 stopped runs x 2 folds x 1 epoch + the best run's 2 folds x 4 epochs.
  assert.equal(trained, 3 * 2 + 2 * 4);
});

test('without early stopping every run trains every epoch; max_parallel_runs bounds the runs in flight', T, async () => {
  const w = await world();
  const { c, m } = w.start();
  const s0 = await m.submitSweep(fourConfigs({ earlyStop: 'none', maxParallelRuns: 1 }));
  assert.deepEqual(s0.rungs, []);
  assert.deepEqual(
    s0.trials.map((t) => t.runId !== ''),
    [true, false, false, false],
  );
  assert.deepEqual(
    w.queue.records().map((r) => r.task.runId),
    [`${s0.id}-t0`, `${s0.id}-t0`],
    'only the first run was started',
  );
  // One fold of run 0, then the other: run 1 starts only once run 0 has ended.
  await work(c, m, w.queue, { maxTasks: 1 });
  assert.equal((await m.getSweep(s0.id)).trials[1]?.runId, '');
  await work(c, m, w.queue, { maxTasks: 1 });
  assert.notEqual((await m.getSweep(s0.id)).trials[1]?.runId, '');
  const trained = await work(c, m, w.queue);
  const s = await m.getSweep(s0.id);
  assert.equal(s.state, SweepState.SWEEP_STATE_SUCCEEDED);
  assert.equal(trained + 2 * 4, 4 * 2 * 4);
  assert.equal(s.bestTrial, 2);
  assert.deepEqual(s.decisions, []);
});

test('a stopped run: queued tasks are skipped, a running attempt is told to stop, its checkpoints are kept, a late result is ignored', T, async () => {
  const w = await world();
  const { c } = w.start();
  const run = await c.submitRun(base, { id: 'solo-t0', sweepId: 'solo' });
  const s = await c.startAttempt({ runId: run.id, fold: 0, worker: 'w', delivery: 1 });
  const a: AttemptRef = { runId: run.id, fold: 0, token: s.token, jobId: '' };
  const progress = { epoch: 1, epochs: 4, images: 5, totalImages: 10, imagesPerSec: 5, loss: 0.5, etaSeconds: 7, updatedAtMs: 0 };
  assert.deepEqual(await c.reportProgress(a, progress), { stop: false, reason: '' });
  const stopped = await c.stopRun(run.id, 'asha rung 1: test');
  assert.equal(stopped.state, RunState.RUN_STATE_STOPPED);
  assert.deepEqual(
    stopped.folds.map((f) => f.state),
    [FoldState.FOLD_STATE_STOPPED, FoldState.FOLD_STATE_STOPPED],
  );
  assert.deepEqual(await c.reportProgress(a, progress), { stop: true, reason: 'run stopped early: asha rung 1: test' });
  const ack = await c.reportEpoch(a, EpochMetrics.fromPartial({ epoch: 1, loss: 0.5, valLoss: 0.5, valMse: 0.5, seconds: 1, imagesPerSec: 5 }));
  assert.equal(ack.stop, true);
  await upload(c, a, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1);
  assert.equal((await c.getRun(run.id)).folds[0]?.lastCheckpointEpoch, 1, 'the checkpoint is stored');
  await c.finishFold({ attempt: a, bestEpoch: 1 });
  assert.equal((await c.getRun(run.id)).folds[0]?.state, FoldState.FOLD_STATE_STOPPED);
  const queued = await c.startAttempt({ runId: run.id, fold: 1, worker: 'w', delivery: 1 });
  assert.equal(queued.proceed, false);
  assert.match(queued.reason, /RUN_STATE_STOPPED/);
  assert.ok(await w.store.stat(`runs/${run.id}/summary.json`), 'a summary of the stopped run is written');
  assert.equal((await c.stopRun(run.id, 'again')).stopReason, 'asha rung 1: test', 'idempotent');
});

test('a restarted coordinator keeps the recorded decisions and ends the sweep as an uninterrupted one', T, async () => {
  const ref = await world();
  const r = ref.start();
  const refId = (await r.m.submitSweep(fourConfigs())).id;
  const refTrained = await work(r.c, r.m, ref.queue);
  const expected = await r.m.getSweep(refId);

  const w = await world();
  const first = w.start();
  const id = (await first.m.submitSweep(fourConfigs())).id;
  // Six tasks: every fold of trials 0-2 reaches rung 1 (the first three decisions).
  let trained = await work(first.c, first.m, w.queue, { maxTasks: 6 });
  const before = await first.m.getSweep(id);
  assert.deepEqual(summary(before.decisions), ['0@1:go', '1@1:go', '2@1:go', '0@1:stop', '1@1:stop']);
  // The coordinator dies; a new one over the same KV, queue and storage carries on.
  const second = w.start();
  assert.deepEqual(await second.m.recover(), [id]);
  trained += await work(second.c, second.m, w.queue);
  const after = await second.m.getSweep(id);
  assert.deepEqual(summary(after.decisions).slice(0, before.decisions.length), summary(before.decisions), 'recorded decisions are kept');
  assert.deepEqual(summary(after.decisions), summary(expected.decisions));
  assert.equal(after.state, SweepState.SWEEP_STATE_SUCCEEDED);
  assert.equal(after.bestTrial, expected.bestTrial);
  assert.equal(trained, refTrained);
});

test('recover() applies a decision recorded before the coordinator could act on it', T, async () => {
  const w = await world();
  const first = w.start();
  const id = (await first.m.submitSweep(fourConfigs({ earlyStop: 'median' }))).id;
  // As if a coordinator recorded a stop and died before stopping the run.
  await w.sweepDocs.update(sweepKey(id), (d) => ({
    ...d,
    sweep: { ...d.sweep, decisions: [{ rung: 1, trial: 3, runId: `${id}-t3`, score: 0.3, stopped: true, reason: 'median rung 1: recorded', atMs: 0 }] },
  }));
  const second = w.start();
  await second.m.recover();
  await second.m.idle();
  const run = await second.c.getRun(`${id}-t3`);
  assert.equal(run.state, RunState.RUN_STATE_STOPPED);
  assert.equal(run.stopReason, 'median rung 1: recorded');
});

test('cancelling a sweep cancels its runs and starts no more; watch ends with the final sweep', T, async () => {
  const w = await world();
  const { c, m } = w.start();
  const s0 = await m.submitSweep(fourConfigs({ maxParallelRuns: 2 }));
  const events: SweepState[] = [];
  const ac = new AbortController();
  const watching = m.watchSweep(s0.id, (e) => events.push(e.sweep?.state ?? SweepState.SWEEP_STATE_UNSPECIFIED), ac.signal);
  const s = await m.cancelSweep(s0.id);
  await watching;
  assert.equal(s.state, SweepState.SWEEP_STATE_CANCELLED);
  assert.equal(events.at(-1), SweepState.SWEEP_STATE_CANCELLED);
  assert.deepEqual(
    s.trials.map((t) => RunState[t.state]),
    ['RUN_STATE_CANCELLED', 'RUN_STATE_CANCELLED', 'RUN_STATE_CANCELLED', 'RUN_STATE_CANCELLED'],
  );
  assert.deepEqual(
    s.trials.map((t) => t.runId !== ''),
    [true, true, false, false],
  );
  assert.equal((await c.getRun(`${s0.id}-t0`)).state, RunState.RUN_STATE_CANCELLED);
  assert.equal(await work(c, m, w.queue), 0);
  assert.equal((await m.listSweeps()).length, 1);
});

test('a fold paused at a rung: its old task is skipped at StartAttempt, progress is answered stop, and it goes on once the run is judged', T, async () => {
  const w = await world();
  const { c, m } = w.start();
  const s0 = await m.submitSweep(fourConfigs({ grid: [{ name: 'learning-rate', values: ['1e-3'] }] }));
  const runId = `${s0.id}-t0`;
  const s = await c.startAttempt({ runId, fold: 0, worker: 'w', delivery: 1 });
  const a: AttemptRef = { runId, fold: 0, token: s.token, jobId: '' };
  const ack = await c.reportEpoch(a, EPOCH1);
  assert.deepEqual(ack, { stop: true, reason: 'paused at epoch 1: the sweep judges the run once every fold has reported it' });
  await upload(c, a, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1);
  const progress = { epoch: 2, epochs: 4, images: 5, totalImages: 10, imagesPerSec: 5, loss: 0.5, etaSeconds: 7, updatedAtMs: 0 };
  assert.equal((await c.reportProgress(a, progress)).stop, true);
  const run = await c.getRun(runId);
  assert.equal(run.folds[0]?.state, FoldState.FOLD_STATE_PENDING);
  assert.equal(run.folds[0]?.lastCheckpointEpoch, 1);
  // The first task delivered again (its worker died before acknowledging it): nothing to train until the run is judged.
  const again = await c.startAttempt({ runId, fold: 0, worker: 'w2', delivery: 2 });
  assert.equal(again.proceed, false);
  assert.match(again.reason, /fold 0 is paused at epoch 1 until its sweep judges the run/);
  await m.idle();
  assert.deepEqual((await m.getSweep(s0.id)).decisions, [], 'fold 1 has not reported epoch 1 yet');
  // Fold 1 reaches the rung: the run is judged (alone: it goes on) and fold 0 is queued again; fold 1 once the
  // checkpoint its attempt uploads after the report has landed (that change alone schedules the step that queues it).
  const b = await c.startAttempt({ runId, fold: 1, worker: 'w', delivery: 1 });
  const b1: AttemptRef = { runId, fold: 1, token: b.token, jobId: '' };
  await c.reportEpoch(b1, EpochMetrics.fromPartial({ epoch: 1, loss: 0.3, valLoss: 0.3, valMse: 0.3, seconds: 1, imagesPerSec: 10 }));
  await m.idle();
  assert.deepEqual(summary((await m.getSweep(s0.id)).decisions), ['0@1:go']);
  assert.deepEqual(resumedFolds(w.queue, 1), [0], 'fold 1 waits for its rung checkpoint');
  await upload(c, b1, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1);
  await m.idle();
  assert.deepEqual(resumedFolds(w.queue, 1), [0, 1]);
  for (const fold of [0, 1]) {
    const resumed = await c.startAttempt({ runId, fold, worker: 'w3', delivery: 1 });
    assert.equal(resumed.proceed, true);
    assert.equal(resumed.resumeCheckpoint, `runs/${runId}/fold-${fold}/checkpoints/epoch-0001.ckpt`);
  }
});

test('with two coordinators, a fold of a sweep submitted through the other one pauses at its first rung (no wait for the minute recover())', T, async () => {
  const w = await world();
  const a = w.start();
  const b = w.start();
  const s0 = await a.m.submitSweep(fourConfigs({ grid: [{ name: 'learning-rate', values: ['1e-3'] }] }));
  const runId = `${s0.id}-t0`;
  const s = await b.c.startAttempt({ runId, fold: 0, worker: 'w', delivery: 1 });
  const ack = await b.c.reportEpoch({ runId, fold: 0, token: s.token, jobId: '' }, EPOCH1);
  assert.deepEqual(ack, { stop: true, reason: 'paused at epoch 1: the sweep judges the run once every fold has reported it' });
  await a.m.idle();
  await b.m.idle();
});

test("a fold whose pausing attempt died before storing the rung checkpoint is queued by the minute's recover() once the grace has passed", T, async () => {
  const w = await world();
  let clock = Date.UTC(2026, 0, 2, 3, 4, 5);
  const now = (): number => clock;
  const c = new Coordinator({ store: w.store, queue: w.queue, runs: w.runs, now, checkpointGraceMs: 120_000, exportArtifacts: () => Promise.resolve('') });
  const m = new SweepManager({ coordinator: c, sweeps: w.sweepDocs, now, retryMs: 5 });
  const s0 = await m.submitSweep(fourConfigs({ grid: [{ name: 'learning-rate', values: ['1e-3'] }] }));
  const runId = `${s0.id}-t0`;
  await reportFirstEpoch(c, runId, 0);
  await m.idle();
  // Fold 1's worker dies between its report and its upload.
  const b = await c.startAttempt({ runId, fold: 1, worker: 'w', delivery: 1 });
  await c.reportEpoch({ runId, fold: 1, token: b.token, jobId: '' }, EPOCH1);
  await m.idle();
  assert.deepEqual(summary((await m.getSweep(s0.id)).decisions), ['0@1:go']);
  assert.deepEqual(resumedFolds(w.queue, 1), [0]);
  clock += 60_000;
  await m.recover();
  await m.idle();
  assert.deepEqual(resumedFolds(w.queue, 1), [0], 'still within the grace');
  clock += 60_000;
  await m.recover();
  await m.idle();
  assert.deepEqual(resumedFolds(w.queue, 1), [0, 1]);
  const resumed = await c.startAttempt({ runId, fold: 1, worker: 'w2', delivery: 1 });
  assert.equal(resumed.proceed, true);
  assert.equal(resumed.resumeCheckpoint, '', 'from what the fold had: nothing');
  await m.close();
});

test('median stopping over 4 configs: runs worse than the median of the others at a rung are stopped', T, async () => {
  const w = await world();
  const { c, m } = w.start();
  const s0 = await m.submitSweep(fourConfigs({ earlyStop: 'median' }));
  await work(c, m, w.queue);
  const s = await m.getSweep(s0.id);
  assert.equal(s.state, SweepState.SWEEP_STATE_SUCCEEDED);
  assert.equal(s.bestTrial, 2);
  // Rung 1 scores: 0.855 (1e-7), 0.3325 (1e-4), 0.19 (1e-3), 0.285 (3e-4), +0.0005 fold noise.
  assert.deepEqual(
    s.trials.map((t) => RunState[t.state]),
    ['RUN_STATE_STOPPED', 'RUN_STATE_STOPPED', 'RUN_STATE_SUCCEEDED', 'RUN_STATE_SUCCEEDED'],
  );
  assert.match(s.trials[0]?.stopReason ?? '', /^median rung 1: mean val loss 0\.8555 is worse than the median/);
});

test('a fold that fails before a rung: its sibling paused there is not left waiting; the run is stopped and the sweep ends', T, async () => {
  const w = await world();
  const { c, m } = w.start();
  const s0 = await m.submitSweep(fourConfigs({ grid: [{ name: 'learning-rate', values: ['1e-3'] }] }));
  const runId = `${s0.id}-t0`;
  const s = await c.startAttempt({ runId, fold: 0, worker: 'w', delivery: 1 });
  const a: AttemptRef = { runId, fold: 0, token: s.token, jobId: '' };
  assert.equal((await c.reportEpoch(a, EPOCH1)).stop, true);
  await upload(c, a, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1);
  const b = await c.startAttempt({ runId, fold: 1, worker: 'w', delivery: 1 });
  await c.failFold({ attempt: { runId, fold: 1, token: b.token, jobId: '' }, error: 'loss became NaN', final: true });
  await m.recover();
  await m.idle();
  const run = await c.getRun(runId);
  assert.equal(run.state, RunState.RUN_STATE_STOPPED);
  assert.match(run.stopReason, /fold 1 failed \(loss became NaN\)/);
  assert.equal(run.folds[0]?.lastCheckpointEpoch, 1, 'the paused fold keeps its checkpoint');
  const sweep = await m.getSweep(s0.id);
  // Its only trial ended without finishing: the sweep ends (FAILED: no best run), it does not wait.
  assert.equal(sweep.state, SweepState.SWEEP_STATE_FAILED);
  assert.equal(sweep.trials[0]?.state, RunState.RUN_STATE_STOPPED);
});

test('resumePaused queues no second task for a fold that is PENDING after a failed attempt (it waits for its own task)', T, async () => {
  const w = await world();
  const { c } = w.start();
  // A run of a sweep the manager does not know: nothing pauses, the folds run on their first tasks.
  const run = await c.submitRun(base, { id: 'other-t0', sweepId: 'other' });
  const d = await w.queue.next(1);
  assert.equal(d?.task.fold, 0);
  const s = await c.startAttempt({ runId: run.id, fold: 0, worker: 'w', delivery: 1 });
  const a: AttemptRef = { runId: run.id, fold: 0, token: s.token, jobId: '' };
  await c.reportEpoch(a, EPOCH1);
  // A transient failure: the fold is PENDING after one attempt, its task handed back for redelivery.
  await c.failFold({ attempt: a, error: 'worker out of memory', final: false });
  d?.nak();
  assert.equal((await c.getRun(run.id)).folds[0]?.state, FoldState.FOLD_STATE_PENDING);
  assert.deepEqual(await c.resumePaused(run.id, 1), [], 'no fold was paused at epoch 1');
  assert.deepEqual(
    w.queue.records().map((r) => `${r.task.fold}:${r.task.resumeAt ?? 0}`),
    ['0:0', '1:0'],
    'fold 0 has only its own task',
  );
});

test('a resume cut short after clearing the pause queues the released folds on the next call', T, async () => {
  const w = await world();
  let failEnqueue = 0;
  const queue = blippingQueue(w.queue, (task) => task.resumeAt !== undefined && failEnqueue-- > 0);
  const c = new Coordinator({ store: w.store, queue, runs: w.runs, exportArtifacts: () => Promise.resolve('') });
  const m = new SweepManager({ coordinator: c, sweeps: w.sweepDocs, retryMs: 5 });
  const s0 = await m.submitSweep(fourConfigs({ grid: [{ name: 'learning-rate', values: ['1e-3'] }] }));
  const runId = `${s0.id}-t0`;
  const report = (fold: number): Promise<void> => reportFirstEpoch(c, runId, fold);
  await report(0);
  await m.idle();
  failEnqueue = 1;
  await report(1);
  // The step's resume cleared both pauses, then its first enqueue failed; the retried step queues both folds.
  await m.idle();
  await new Promise((r) => setTimeout(r, 50));
  await m.idle();
  assert.deepEqual(resumedFolds(w.queue, 1), [0, 1]);
  const doc = (await w.runs.get(`run.${runId}`))?.value;
  assert.deepEqual(doc?.paused, [0, 0]);
  assert.deepEqual(doc?.released, [1, 1], 'released until an attempt takes the fold');
  const resumed = await c.startAttempt({ runId, fold: 0, worker: 'w2', delivery: 1 });
  assert.equal(resumed.proceed, true);
  assert.deepEqual((await w.runs.get(`run.${runId}`))?.value.released, [0, 1]);
  await m.close();
});

test('recover() reading a sweep before an update landed keeps the newer cached revision: a judged rung does not pause a fold again', T, async () => {
  const w = await world();
  // recover()'s read can be overtaken by a step's update: `stale` is handed to the next read of the sweep, as if read before it.
  let stale: Versioned<SweepDoc> | undefined;
  const sweeps: DocStore<SweepDoc> = {
    ...w.sweepDocs,
    get: (key) => {
      const v = stale;
      stale = undefined;
      return v ? Promise.resolve(v) : w.sweepDocs.get(key);
    },
  };
  const c = new Coordinator({ store: w.store, queue: w.queue, runs: w.runs, exportArtifacts: () => Promise.resolve('') });
  const m = new SweepManager({ coordinator: c, sweeps, retryMs: 5 });
  const s0 = await m.submitSweep(fourConfigs({ grid: [{ name: 'learning-rate', values: ['1e-3'] }] }));
  const runId = `${s0.id}-t0`;
  /** A new attempt at `fold` reports epoch 1; true when it is told to stop (paused). */
  const report = async (fold: number): Promise<boolean> => {
    const s = await c.startAttempt({ runId, fold, worker: 'w', delivery: 1 });
    const ack = await c.reportEpoch({ runId, fold, token: s.token, jobId: '' }, EPOCH1);
    return ack.stop;
  };
  assert.equal(await report(0), true, 'paused at rung 1');
  await m.idle();
  const before = await w.sweepDocs.get(sweepKey(s0.id));
  await report(1);
  await m.idle();
  assert.deepEqual(summary((await m.getSweep(s0.id)).decisions), ['0@1:go']);
  // recover() gets the read from before the decision; the step it schedules then fails (not retried), so only the cache tells.
  stale = before;
  w.sweepDocs.failNext('get', new CoordinatorError('FAILED_PRECONDITION', 'test: the step cannot read the sweep'));
  await m.recover();
  await m.idle();
  // Fold 0's resumed attempt replays epoch 1 (no checkpoint was stored): the rung was judged, it goes on.
  assert.equal(await report(0), false, 'not paused a second time at rung 1');
  assert.deepEqual((await w.runs.get(`run.${runId}`))?.value.paused, [0, 0]);
});

test('a sweep whose document would outgrow the NATS max payload with its decisions is refused at submission, naming the sizes', T, async () => {
  const w = await world();
  const c = new Coordinator({ store: w.store, queue: w.queue, runs: w.runs, exportArtifacts: () => Promise.resolve('') });
  const m = new SweepManager({ coordinator: c, sweeps: w.sweepDocs, retryMs: 5, maxDocBytes: 16 * 1024 });
  await assert.rejects(
    m.submitSweep(fourConfigs({ grid: [{ name: 'learning-rate', values: Array.from({ length: 12 }, (_, i) => `${i + 1}e-4`) }] })),
    (err: unknown) =>
      err instanceof CoordinatorError &&
      err.outcome === 'INVALID_ARGUMENT' &&
      /^sweep lr: its document would be \d+ bytes at submission and up to \d+ bytes with its decisions \(12 trials x 2 rungs\), over the limit of 15360 bytes \(the NATS max_payload of 16384 bytes/.test(
        err.message,
      ),
  );
  assert.deepEqual(await m.listSweeps(), [], 'nothing recorded');
  assert.deepEqual(w.queue.records(), [], 'no run started');
  // A small one fits under the same limit.
  const small = await m.submitSweep(fourConfigs({ grid: [{ name: 'learning-rate', values: ['1e-3'] }] }));
  assert.equal(small.state, SweepState.SWEEP_STATE_RUNNING);
  await m.close();
});

test('a sweep document over the NATS max payload (every update refused) fails the sweep and stops its runs instead of retrying for ever', T, async () => {
  const w = await world();
  const { c, m } = w.start();
  const s0 = await m.submitSweep(fourConfigs());
  // The first two trials' folds reach rung 1; then the document can no longer be written.
  await work(c, m, w.queue, { maxTasks: 4 });
  assert.equal((await m.getSweep(s0.id)).state, SweepState.SWEEP_STATE_RUNNING);
  w.sweepDocs.failNext(
    'update',
    new MessagingError('TOO_LARGE', `sweep.${s0.id}: a value of 1048600 bytes is over the NATS server's max_payload of 1048576 bytes`),
  );
  await work(c, m, w.queue);
  const s = await m.getSweep(s0.id);
  assert.equal(s.state, SweepState.SWEEP_STATE_FAILED);
  assert.match(s.error, /its document no longer fits in the KV \(.*max_payload of 1048576 bytes\): the sweep was failed and its runs still going were stopped/);
  for (const t of s.trials) {
    if (!t.runId) {
      assert.equal(t.state, RunState.RUN_STATE_CANCELLED, `trial ${t.index} never starts`);
      continue;
    }
    const run = await c.getRun(t.runId);
    assert.ok([RunState.RUN_STATE_STOPPED, RunState.RUN_STATE_SUCCEEDED].includes(run.state), `${t.runId} ended (${RunState[run.state]})`);
    assert.equal(t.state, run.state);
  }
  assert.ok(
    w.queue.records().every((r) => r.state === 'acked'),
    'no task is left waiting',
  );
  assert.deepEqual((await w.sweepDocs.get(sweepKey(s0.id)))?.value.specs, [], 'the specs were dropped to make room for the failure');
});

test('a trial stop reason longer than the cap (a fold error) is cut in the sweep document', T, async () => {
  const w = await world();
  const { c, m } = w.start();
  const s0 = await m.submitSweep(fourConfigs({ grid: [{ name: 'learning-rate', values: ['1e-3'] }] }));
  const runId = `${s0.id}-t0`;
  const s = await c.startAttempt({ runId, fold: 0, worker: 'w', delivery: 1 });
  await c.reportEpoch({ runId, fold: 0, token: s.token, jobId: '' }, EPOCH1);
  const b = await c.startAttempt({ runId, fold: 1, worker: 'w', delivery: 1 });
  await c.failFold({ attempt: { runId, fold: 1, token: b.token, jobId: '' }, error: `loss became NaN ${'x'.repeat(5000)}`, final: true });
  await m.recover();
  await m.idle();
  const trial = (await m.getSweep(s0.id)).trials[0];
  assert.equal(trial?.state, RunState.RUN_STATE_STOPPED);
  assert.equal(trial?.stopReason.length, MAX_REASON_CHARS);
  assert.match(trial?.stopReason ?? '', /^fold 1 failed \(loss became NaN x+…$/);
});

test('a trial whose submission was cut short after its run was recorded gets its missing tasks at the retried step', T, async () => {
  const w = await world();
  let failEnqueue = 1;
  const queue = blippingQueue(w.queue, (task) => task.fold === 1 && failEnqueue-- > 0);
  const c = new Coordinator({ store: w.store, queue, runs: w.runs, exportArtifacts: () => Promise.resolve('') });
  const m = new SweepManager({ coordinator: c, sweeps: w.sweepDocs, retryMs: 5 });
  const s0 = await m.submitSweep(fourConfigs({ grid: [{ name: 'learning-rate', values: ['1e-3'] }] }));
  // The first step recorded the run, published fold 0's task and failed on fold 1's; the step is tried again.
  await new Promise((r) => setTimeout(r, 50));
  await m.idle();
  assert.equal((await c.getRun(`${s0.id}-t0`)).state, RunState.RUN_STATE_PENDING);
  assert.deepEqual(
    w.queue.records().map((r) => `${r.task.runId}.${r.task.fold}`),
    [`${s0.id}-t0.0`, `${s0.id}-t0.1`],
    'every fold has its task, once',
  );
  await m.close();
});

test('a cancelled sweep whose runs have all ended is not stepped again by recover()', T, async () => {
  const w = await world();
  const { c, m } = w.start();
  const s0 = await m.submitSweep(fourConfigs({ maxParallelRuns: 2 }));
  await m.cancelSweep(s0.id);
  await c.idle();
  await m.idle();
  assert.equal((await c.getRun(`${s0.id}-t1`)).state, RunState.RUN_STATE_CANCELLED);
  assert.equal((await w.sweepDocs.get(sweepKey(s0.id)))?.value.cancelDone, true);
  assert.deepEqual(await m.recover(), [], 'nothing left to do');
  // Without the marker (a cancel a coordinator left half-done, say) a restarted coordinator takes it up, and its step
  // records the marker. (This one saw it settled, so its minute recovery skips it until the hourly full read.)
  await w.sweepDocs.update(sweepKey(s0.id), (d) => ({ sweep: d.sweep, specs: d.specs }));
  await m.close();
  const again = w.start().m;
  assert.deepEqual(await again.recover(), [s0.id]);
  await again.idle();
  assert.equal((await w.sweepDocs.get(sweepKey(s0.id)))?.value.cancelDone, true);
});

test('a change that comes in during a step that fails for good gets a step of its own', T, async () => {
  const w = await world();
  // While armed, the next read of the sweep waits for `release` and then fails with a refusal that is not retried.
  let gate: Promise<void> | undefined;
  let release = (): void => {};
  const sweeps: DocStore<SweepDoc> = {
    ...w.sweepDocs,
    get: async (key) => {
      const g = gate;
      gate = undefined;
      if (!g) return w.sweepDocs.get(key);
      await g;
      throw new CoordinatorError('FAILED_PRECONDITION', 'test: the sweep cannot be read');
    },
  };
  const c = new Coordinator({ store: w.store, queue: w.queue, runs: w.runs, exportArtifacts: () => Promise.resolve('') });
  const m = new SweepManager({ coordinator: c, sweeps, retryMs: 5 });
  const s0 = await m.submitSweep(fourConfigs({ grid: [{ name: 'learning-rate', values: ['1e-3'] }] }));
  const runId = `${s0.id}-t0`;
  const report = (fold: number): Promise<void> => reportFirstEpoch(c, runId, fold);
  await report(0);
  await m.idle();
  gate = new Promise((r) => (release = r));
  // A step starts (fold 1's attempt is a change) and hangs on its read; fold 1 reaching the rung comes in meanwhile.
  const b = await c.startAttempt({ runId, fold: 1, worker: 'w', delivery: 1 });
  await c.reportEpoch({ runId, fold: 1, token: b.token, jobId: '' }, EPOCH1);
  release();
  await m.idle();
  assert.deepEqual(summary((await m.getSweep(s0.id)).decisions), ['0@1:go'], 'the rung every fold reached was judged without waiting for recover()');
  await m.close();
});
