// A resume checkpoint that cannot be used, through the real components: the worker reports it, the coordinator falls
// the fold back (here to a fresh start: no older checkpoint is stored), and the fold and the run still succeed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { CheckpointKind, EpochMetrics, FoldState, RunState, type AttemptRef, type WorkerServiceClient } from '@cvc/proto';
import { startLocalCluster } from '@cvc/cli/testing';
import { getRun, importFashion, isFinal, runClient, submitFashionRun, until, workerClient } from './helpers.js';

const unary = <T>(fn: (cb: (e: ServiceError | null, r: T) => void) => unknown): Promise<T> =>
  new Promise((resolve, reject) => void fn((e, r) => (e ? reject(e) : resolve(r))));

/** An attempt's epoch checkpoint of `bytes`, uploaded as a worker does (header, data, sha256). */
function uploadCheckpoint(wc: WorkerServiceClient, attempt: AttemptRef, epoch: number, bytes: Buffer): Promise<{ key: string }> {
  return new Promise((resolve, reject) => {
    const s = wc.uploadCheckpoint(new Metadata(), (e, r) => (e ? reject(e) : resolve(r)));
    s.write({ header: { attempt, epoch, kind: CheckpointKind.CHECKPOINT_KIND_EPOCH, size: bytes.length }, data: Buffer.alloc(0), sha256: '' });
    s.write({ data: bytes, sha256: createHash('sha256').update(bytes).digest('hex') });
    s.end();
  });
}

test('a corrupt resume checkpoint: the real worker reports it, the fold restarts fresh (recorded in checkpoint_fallback, warned in the log) and the run succeeds', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-ckpt-'));
  const cluster = await startLocalCluster({ dir, workers: 0, backend: 'wasm', ackWaitMs: 10_000 });
  const c = runClient(cluster);
  const wc = workerClient(cluster);
  try {
    await importFashion(cluster, 2, 200);
    const runId = await submitFashionRun(cluster, 2, 2);
    // An earlier attempt at fold 0 reported epoch 1 and stored a checkpoint that does not decode, then failed.
    const s = await unary<{ token: string }>((cb) => wc.startAttempt({ runId, fold: 0, worker: 'earlier', delivery: 1 }, cb));
    const attempt: AttemptRef = { runId, fold: 0, token: s.token, jobId: '' };
    await unary((cb) =>
      wc.reportEpoch({ attempt, metrics: EpochMetrics.fromPartial({ epoch: 1, loss: 0.2, valLoss: 0.2, valMse: 0.2, seconds: 1, imagesPerSec: 1 }) }, cb),
    );
    const { key } = await uploadCheckpoint(wc, attempt, 1, Buffer.from('not a checkpoint at all'));
    await unary((cb) => wc.failFold({ attempt, error: 'the earlier worker died', final: false }, cb));

    cluster.addWorker();
    const done = await until('the run to finish', () => getRun(c, runId), isFinal, 240_000);
    assert.equal(done.state, RunState.RUN_STATE_SUCCEEDED, done.error);
    const f = done.folds[0];
    assert.equal(f?.state, FoldState.FOLD_STATE_SUCCEEDED);
    assert.deepEqual(
      f?.history.map((h) => h.epoch),
      [1, 2],
      'each epoch once, from the fresh start',
    );
    assert.equal(f?.resumedFromEpoch, 0);
    assert.equal(f?.epochReports, 3, "the earlier attempt's epoch 1 and the fresh start's two");
    assert.match(f?.checkpointFallback ?? '', new RegExp(`${key.replace(/[.]/g, '\\.')} \\(epoch 1\\) could not be used: .*restarted from epoch 0`));
    assert.notEqual(f?.history[0]?.loss, 0.2, "the earlier attempt's epoch 1 was replaced by the fresh start's");
    const logs = await Promise.all((await readdir(join(dir, 'logs'))).map((n) => readFile(join(dir, 'logs', n), 'utf8')));
    const warned = logs
      .join('\n')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level?: string; msg?: string; checkpoint?: string })
      .filter((l) => l.msg === 'the resume checkpoint cannot be used; falling back');
    assert.equal(warned.length, 1);
    assert.equal(warned[0]?.checkpoint, key);
  } finally {
    c.close();
    wc.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
