import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FoldState, RunState } from '@cvc/proto';
import { startLocalCluster } from '@cvc/cli/testing';
import { getRun, importFashion, isFinal, runClient, storeOf, submitFashionRun, until } from './helpers.js';

test('nats-server restarted on its JetStream directory mid-run: tasks and run state survive, every epoch reported once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-nats-'));
  const cluster = await startLocalCluster({ dir, workers: 2, backend: 'wasm', ackWaitMs: 5000 });
  const c = runClient(cluster);
  try {
    await importFashion(cluster, 3, 300);
    const runId = await submitFashionRun(cluster, 3, 3);
    await until(
      'an epoch reported',
      () => getRun(c, runId),
      (r) => r.folds.some((f) => f.history.length >= 1),
    );
    await cluster.restartNats(2000);
    const done = await until('the run to finish', () => getRun(c, runId).catch(() => undefined), isFinal, 240_000);
    assert.ok(done);
    assert.equal(done.state, RunState.RUN_STATE_SUCCEEDED, done.error);
    for (const f of done.folds) {
      assert.equal(f.state, FoldState.FOLD_STATE_SUCCEEDED);
      assert.deepEqual(
        f.history.map((h) => h.epoch),
        [1, 2, 3],
      );
      // A redelivery (heartbeats could not reach the broker) may redo at most the epoch in flight.
      assert.ok(f.epochReports >= 3 && f.epochReports <= 3 + (f.attempts - 1), `fold ${f.fold}: ${f.epochReports} reports in ${f.attempts} attempts`);
    }
  } finally {
    c.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('S3 down for 10 s during shard downloads and again during checkpoint uploads: retries with backoff, then every fold completes, nothing lost or duplicated', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-s3-'));
  const cluster = await startLocalCluster({ dir, workers: 0, backend: 'wasm', ackWaitMs: 5000 });
  const c = runClient(cluster);
  const epochs = 6;
  try {
    await importFashion(cluster, 2, 200);
    const runId = await submitFashionRun(cluster, 2, epochs);

    // 1. S3 is down when the workers start: they take their tasks and wait on the shard downloads.
    await cluster.stopS3();
    cluster.addWorker();
    cluster.addWorker();
    await until(
      'both folds started',
      () => getRun(c, runId),
      (r) => r.folds.every((f) => f.attempts === 1),
      60_000,
    );
    const downloadOutageStart = Date.now();
    await new Promise((r) => setTimeout(r, 10_000));
    await cluster.startS3();
    const downloadOutageEnd = Date.now();

    // 2. Down again once epochs are being reported: checkpoint uploads (worker -> coordinator -> S3) wait it out.
    // S3 stops only once a fold has stored the checkpoint of every epoch it reported, so that fold is training
    // its next epoch, not in the middle of an upload: its next report (and the upload after it) falls into the outage.
    const store = storeOf(cluster);
    const storedCheckpoints = (fold: number): Promise<number> => store.list(`runs/${runId}/fold-${fold}/checkpoints/`).then((k) => k.length);
    const { run: before } = await until(
      'an epoch reported and its checkpoint stored',
      async () => {
        const run = await getRun(c, runId);
        return { run, stored: await Promise.all(run.folds.map((f) => storedCheckpoints(f.fold))) };
      },
      ({ run, stored }) => run.folds.some((f, i) => f.epochReports >= 1 && f.epochReports < epochs && stored[i] === f.epochReports),
      120_000,
    );
    await cluster.stopS3();
    const atStop = await getRun(c, runId);
    const uploadOutageStart = Date.now();
    let reportedDuringOutage = false;
    while (Date.now() - uploadOutageStart < 10_000) {
      const r = await getRun(c, runId);
      if (r.folds.some((f, i) => f.epochReports > (before.folds[i]?.epochReports ?? 0))) reportedDuringOutage = true;
      await new Promise((res) => setTimeout(res, 250));
    }
    const stalled = await getRun(c, runId);
    await cluster.startS3();
    const uploadOutageEnd = Date.now();
    // Every epoch is followed by its checkpoint upload, so a report during the outage means an upload ran into it.
    assert.ok(reportedDuringOutage, 'an epoch was reported, and its checkpoint upload started, while S3 was down');
    // Each fold got at most one report past its stored checkpoints (its upload then waits), and none finished.
    for (const [i, f] of stalled.folds.entries()) {
      assert.equal(f.state, FoldState.FOLD_STATE_RUNNING, `fold ${f.fold} could not finish while its checkpoints could not be stored`);
      assert.ok(
        f.epochReports <= (atStop.folds[i]?.epochReports ?? 0) + 1,
        `fold ${f.fold}: ${f.epochReports} reports, ${atStop.folds[i]?.epochReports} when S3 stopped`,
      );
    }

    const done = await until('the run to finish', () => getRun(c, runId), isFinal, 300_000);
    assert.equal(done.state, RunState.RUN_STATE_SUCCEEDED, done.error);
    for (const f of done.folds) {
      assert.equal(f.state, FoldState.FOLD_STATE_SUCCEEDED);
      assert.equal(f.attempts, 1, `fold ${f.fold} needed no second attempt: the outages were retried, not failed`);
      assert.equal(f.epochReports, epochs, `fold ${f.fold}: every epoch reported exactly once`);
      assert.deepEqual(
        f.history.map((h) => h.epoch),
        Array.from({ length: epochs }, (_, i) => i + 1),
      );
      const keys = (await store.list(`runs/${runId}/fold-${f.fold}/`)).sort();
      const wanted = Array.from({ length: epochs }, (_, i) => `runs/${runId}/fold-${f.fold}/checkpoints/epoch-${String(i + 1).padStart(4, '0')}.ckpt`);
      assert.deepEqual(
        keys,
        [`runs/${runId}/fold-${f.fold}/best/attempt-${f.attempts}.ckpt`, ...wanted].sort(),
        `fold ${f.fold}: every checkpoint stored once`,
      );
    }
    // The workers were up (ready, task taken) before S3 came back, retried their shard downloads (logged),
    // and trained only after it; the coordinator retried the checkpoint uploads of the second outage.
    const logOf = async (name: string): Promise<{ time: string; msg: string }[]> =>
      (await readFile(join(dir, 'logs', `${name}.log`), 'utf8'))
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { time: string; msg: string });
    const retriedWithin = (lines: { time: string; msg: string }[], from: number, to: number): boolean =>
      lines.some((l) => l.msg === 'object storage unreachable; retrying' && Date.parse(l.time) >= from - 1000 && Date.parse(l.time) <= to + 1000);
    for (const w of ['local-0', 'local-1']) {
      const lines = await logOf(w);
      const training = lines.find((l) => l.msg === 'training fold');
      assert.ok(training, `${w} trained a fold`);
      assert.ok(Date.parse(training.time) >= downloadOutageEnd - 1000, `${w} started training only once its shards could be downloaded`);
      assert.ok(retriedWithin(lines, downloadOutageStart, downloadOutageEnd), `${w} logged its download retries during the first outage`);
    }
    assert.ok(
      retriedWithin(await logOf('coordinator'), uploadOutageStart, uploadOutageEnd),
      'the coordinator logged its upload retries during the second outage',
    );
  } finally {
    c.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a task that always fails: its fold is marked failed with the reason after max_deliver attempts, the other folds complete', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-poison-'));
  const maxDeliver = 3;
  const cluster = await startLocalCluster({ dir, workers: 0, backend: 'wasm', ackWaitMs: 5000, maxDeliver });
  const c = runClient(cluster);
  try {
    await importFashion(cluster, 3, 240);
    cluster.addWorker({ CVC_FAULT_FAIL_FOLD: '1' });
    cluster.addWorker({ CVC_FAULT_FAIL_FOLD: '1' });
    const runId = await submitFashionRun(cluster, 3, 2);
    const done = await until('the run to finish', () => getRun(c, runId), isFinal, 300_000);
    assert.equal(done.state, RunState.RUN_STATE_FAILED);
    const [f0, f1, f2] = done.folds;
    assert.ok(f0 && f1 && f2);
    assert.equal(f1.state, FoldState.FOLD_STATE_FAILED);
    assert.equal(f1.attempts, maxDeliver, 'the failing fold was attempted exactly max_deliver times');
    assert.match(f1.error, /fault injected \(CVC_FAULT_FAIL_FOLD=1\): fold 1 always fails/);
    assert.match(done.error, /fold 1: .*fault injected/);
    assert.equal(f1.epochReports, 0);
    const store = storeOf(cluster);
    for (const f of [f0, f2]) {
      assert.equal(f.state, FoldState.FOLD_STATE_SUCCEEDED, `fold ${f.fold}`);
      assert.equal(f.attempts, 1);
      assert.equal(f.epochReports, 2);
      assert.deepEqual(
        f.history.map((h) => h.epoch),
        [1, 2],
      );
      assert.equal((await store.list(`runs/${runId}/fold-${f.fold}/checkpoints/`)).length, 2);
      assert.ok(await store.stat(`runs/${runId}/fold-${f.fold}/best/attempt-${f.attempts}.ckpt`));
    }
    assert.deepEqual(await store.list(`runs/${runId}/fold-1/`), [], 'the failed fold stored nothing');
    // The folds that succeeded still give a summary and an encoder.
    assert.ok(done.summary && [0, 2].includes(done.summary.bestFold));
    assert.ok(await store.stat(`runs/${runId}/summary.json`));
  } finally {
    c.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('coordinator SIGKILLed mid-run and restarted: workers retry their calls, the run completes, nothing lost or counted twice', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-coord-'));
  const cluster = await startLocalCluster({ dir, workers: 2, backend: 'wasm', ackWaitMs: 10_000 });
  let c = runClient(cluster);
  const epochs = 5;
  try {
    await importFashion(cluster, 2, 300);
    const runId = await submitFashionRun(cluster, 2, epochs);
    const before = await until(
      'both folds reporting',
      () => getRun(c, runId),
      (r) => r.folds.every((f) => f.epochReports >= 1),
      120_000,
    );
    assert.ok(
      before.folds.every((f) => f.epochReports < epochs),
      'the kill lands mid-run',
    );
    c.close();
    await cluster.restartCoordinator();
    c = runClient(cluster);
    const done = await until('the run to finish', () => getRun(c, runId), isFinal, 300_000);
    assert.equal(done.state, RunState.RUN_STATE_SUCCEEDED, done.error);
    const store = storeOf(cluster);
    for (const f of done.folds) {
      assert.equal(f.state, FoldState.FOLD_STATE_SUCCEEDED);
      assert.equal(f.attempts, 1, `fold ${f.fold}: its worker rode out the restart (no new attempt)`);
      assert.equal(f.epochReports, epochs, `fold ${f.fold}: every epoch counted exactly once`);
      assert.deepEqual(
        f.history.map((h) => h.epoch),
        Array.from({ length: epochs }, (_, i) => i + 1),
      );
      assert.equal((await store.list(`runs/${runId}/fold-${f.fold}/checkpoints/`)).length, epochs, `fold ${f.fold}: a checkpoint per epoch`);
    }
    assert.ok(done.summary?.encoder, 'the restarted coordinator finalised the run');
  } finally {
    c.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
