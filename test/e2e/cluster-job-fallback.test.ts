// A clustering job's resume checkpoint that cannot be used, through the real components: the worker reports it, the
// coordinator falls the job back (here to a fresh start from the source fold: no older job checkpoint is stored), the
// job records why and still succeeds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import {
  CheckpointKind,
  ClusterJobServiceClient,
  ClusterJobSpec,
  ClusterJobState,
  ClusterWorkerServiceClient,
  RunState,
  type AttemptRef,
  type ClusterJob,
  type WorkerServiceClient,
} from '@cvc/proto';
import { startLocalCluster } from '@cvc/cli/testing';
import { channel, getRun, importFashion, isFinal, runClient, submitFashionRun, until, workerClient } from './helpers.js';

const unary = <T>(fn: (cb: (e: ServiceError | null, r: T) => void) => unknown): Promise<T> =>
  new Promise((resolve, reject) => void fn((e, r) => (e ? reject(e) : resolve(r))));

/** A job attempt's CLUSTER checkpoint of `bytes`, uploaded as a worker does (header, data, sha256). */
function uploadJobCheckpoint(wc: WorkerServiceClient, attempt: AttemptRef, iteration: number, bytes: Buffer): Promise<{ key: string }> {
  return new Promise((resolve, reject) => {
    const s = wc.uploadCheckpoint(new Metadata(), (e, r) => (e ? reject(e) : resolve(r)));
    s.write({ header: { attempt, epoch: iteration, kind: CheckpointKind.CHECKPOINT_KIND_CLUSTER, size: bytes.length }, data: Buffer.alloc(0), sha256: '' });
    s.write({ data: bytes, sha256: createHash('sha256').update(bytes).digest('hex') });
    s.end();
  });
}

const FINAL_JOB = [ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED, ClusterJobState.CLUSTER_JOB_STATE_FAILED, ClusterJobState.CLUSTER_JOB_STATE_CANCELLED];

test('a corrupt clustering-job checkpoint: the real worker reports it, the job restarts fresh from the source fold (why in its checkpoint_fallback) and succeeds', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-cjob-ckpt-'));
  const cluster = await startLocalCluster({ dir, workers: 1, backend: 'wasm', ackWaitMs: 10_000 });
  const rc = runClient(cluster);
  const wc = workerClient(cluster);
  const ch = channel(cluster, cluster.credentials.userToken);
  const jc = new ClusterJobServiceClient(cluster.endpoints.coordinator, ch.creds, ch.options);
  const wch = channel(cluster, cluster.credentials.workerToken);
  const cwc = new ClusterWorkerServiceClient(cluster.endpoints.coordinator, wch.creds, wch.options);
  try {
    await importFashion(cluster, 2, 200);
    const runId = await submitFashionRun(cluster, 2, 1);
    const run = await until('the run to finish', () => getRun(rc, runId), isFinal, 240_000);
    assert.equal(run.state, RunState.RUN_STATE_SUCCEEDED, run.error);
    // No worker while the earlier attempt is staged.
    const w0 = cluster.workers[0];
    assert.ok(w0);
    const exited = once(w0, 'exit');
    w0.kill('SIGTERM');
    await exited;

    const spec = ClusterJobSpec.fromPartial({ runId, method: 'dec', k: 10, updateInterval: 5, maxIterations: 10, batchSize: 32, tol: 0 });
    const submitted = await unary<ClusterJob>((cb) => jc.submitClusterJob({ spec }, cb));
    // An earlier attempt stored a job checkpoint that does not decode, then failed.
    const s = await unary<{ token: string }>((cb) => cwc.startClusterAttempt({ jobId: submitted.id, worker: 'earlier', delivery: 1 }, cb));
    const attempt: AttemptRef = { runId, fold: submitted.fold, token: s.token, jobId: submitted.id };
    const { key } = await uploadJobCheckpoint(wc, attempt, 5, Buffer.from('not a clustering state'));
    await unary((cb) => wc.failFold({ attempt, error: 'the earlier worker died', final: false }, cb));

    cluster.addWorker();
    const job = await until(
      'the job to finish',
      () => unary<ClusterJob>((cb) => jc.getClusterJob({ jobId: submitted.id }, cb)),
      (j) => FINAL_JOB.includes(j.state),
      240_000,
    );
    assert.equal(job.state, ClusterJobState.CLUSTER_JOB_STATE_SUCCEEDED, job.error);
    assert.equal(job.attempts, 2, 'the earlier attempt and the real one: the fallback took no delivery');
    assert.equal(job.resumedFromIteration, 0);
    assert.equal(job.result?.iterations, 10);
    assert.match(
      job.checkpointFallback,
      new RegExp(`${key.replace(/[.]/g, '\\.')} \\(iteration 5\\) could not be used: CHECKPOINT_CORRUPT: .*restarted from iteration 0`),
    );
    const logs = await Promise.all((await readdir(join(dir, 'logs'))).map((n) => readFile(join(dir, 'logs', n), 'utf8')));
    const warned = logs
      .join('\n')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; checkpoint?: string })
      .filter((l) => l.msg === 'the resume checkpoint of a clustering job cannot be used; falling back');
    assert.equal(warned.length, 1);
    assert.equal(warned[0]?.checkpoint, key);
  } finally {
    rc.close();
    wc.close();
    jc.close();
    cwc.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
