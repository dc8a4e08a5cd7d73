import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import {
  CheckpointKind,
  RETRY_AFTER_MS_KEY,
  RunServiceClient,
  RunSpec,
  type AttemptRef,
  type StartAttemptResponse,
  type UploadCheckpointResponse,
  type WorkerServiceClient,
} from '@cvc/proto';
import { main } from '@cvc/cli';
import { captureEnv, startLocalCluster } from '@cvc/cli/testing';
import { assertNoSecretsInLogs, importFashion, runClient, storeOf, submitFashionRun, workerClient } from './helpers.js';

type Cb<T> = (e: ServiceError | null, r: T) => void;
const call = <T>(f: (cb: Cb<T>) => unknown): Promise<T> => new Promise((res, rej) => void f((e, r) => (e ? rej(e) : res(r))));
const code =
  (c: status, re: RegExp) =>
  (e: unknown): boolean =>
    (e as ServiceError).code === c && re.test((e as ServiceError).details);

/** Starts an upload and returns its stream, the response promise and a function that finishes it. */
function startUpload(w: WorkerServiceClient, a: AttemptRef, epoch: number, data: Buffer): { done: Promise<UploadCheckpointResponse>; finish: () => void } {
  let s!: ReturnType<WorkerServiceClient['uploadCheckpoint']>;
  const done = new Promise<UploadCheckpointResponse>((resolve, reject) => {
    s = w.uploadCheckpoint((e, r) => (e ? reject(e) : resolve(r)));
  });
  s.on('error', () => {});
  s.write({ header: { attempt: a, epoch, kind: CheckpointKind.CHECKPOINT_KIND_EPOCH, size: data.length }, data: Buffer.alloc(0), sha256: '' });
  s.write({ data, sha256: '' });
  return {
    done,
    finish: () => {
      s.write({ data: Buffer.alloc(0), sha256: createHash('sha256').update(data).digest('hex') });
      s.end();
    },
  };
}

test('only the right clients are let in: TLS, user and worker tokens, bounded uploads, no secret in any log', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-auth-'));
  const cluster = await startLocalCluster({ dir, workers: 0, coordinatorEnv: { CVC_MAX_CONCURRENT_UPLOADS: '1', CVC_UPLOAD_QUEUE_MS: '1500' } });
  const addr = cluster.endpoints.coordinator;
  const user = runClient(cluster);
  const worker = workerClient(cluster);
  const clients: { close(): void }[] = [user, worker];
  try {
    const clusterFile = join(dir, 'cluster.json');
    assert.equal((await import('node:fs')).statSync(clusterFile).mode & 0o077, 0, 'cluster.json (it holds the user token) is private');
    await importFashion(cluster, 2, 40);
    const runId = await submitFashionRun(cluster, 2, 2);

    // Plaintext, and TLS that does not trust the cluster's CA: no connection at all.
    for (const creds of [credentials.createInsecure(), credentials.createSsl()]) {
      const c = new RunServiceClient(addr, creds, { 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' });
      clients.push(c);
      await assert.rejects(
        call((cb) => c.listRuns({ pageSize: 0, pageToken: '' }, new Metadata(), { deadline: Date.now() + 5000 }, cb)),
        (e: ServiceError) => e.code === status.UNAVAILABLE || e.code === status.DEADLINE_EXCEEDED,
      );
    }

    // No token and a wrong token: UNAUTHENTICATED, on every service and kind of call.
    const anon = runClient(cluster, '');
    const wrong = runClient(cluster, 'not-a-real-token-0123456789abcdef');
    const anonWorker = workerClient(cluster, '');
    clients.push(anon, wrong, anonWorker);
    await assert.rejects(
      call((cb) => anon.listRuns({ pageSize: 0, pageToken: '' }, cb)),
      code(status.UNAUTHENTICATED, /missing bearer token/),
    );
    await assert.rejects(
      call((cb) => wrong.listRuns({ pageSize: 0, pageToken: '' }, cb)),
      code(status.UNAUTHENTICATED, /invalid token/),
    );
    await assert.rejects(
      call((cb) => wrong.submitRun({ spec: RunSpec.fromPartial({ dataset: 'fashion-mnist', model: 'seed-mnist', folds: 2 }) }, cb)),
      code(status.UNAUTHENTICATED, /invalid token/),
    );
    await assert.rejects(
      call((cb) => anon.getRun({ runId }, cb)),
      code(status.UNAUTHENTICATED, /missing bearer token/),
    );
    await assert.rejects(
      call((cb) => anonWorker.startAttempt({ runId, fold: 0, worker: 'x', delivery: 1 }, cb)),
      code(status.UNAUTHENTICATED, /missing bearer token/),
    );
    const watch = anon.watchRun({ runId });
    const [watchErr] = (await once(watch, 'error')) as [ServiceError];
    assert.equal(watchErr.code, status.UNAUTHENTICATED);
    const dl = wrong.downloadCheckpoint({ runId, fold: 0 });
    const [dlErr] = (await once(dl, 'error')) as [ServiceError];
    assert.equal(dlErr.code, status.UNAUTHENTICATED);

    // A worker token cannot submit, cancel or read runs; a user token cannot train.
    const workerAsUser = runClient(cluster, cluster.credentials.workerToken);
    const userAsWorker = workerClient(cluster, cluster.credentials.userToken);
    clients.push(workerAsUser, userAsWorker);
    await assert.rejects(
      call((cb) => workerAsUser.submitRun({ spec: RunSpec.fromPartial({ dataset: 'fashion-mnist', model: 'seed-mnist', folds: 2 }) }, cb)),
      code(status.PERMISSION_DENIED, /worker token may not call RunService.SubmitRun/),
    );
    await assert.rejects(
      call((cb) => workerAsUser.cancelRun({ runId }, cb)),
      code(status.PERMISSION_DENIED, /RunService.CancelRun/),
    );
    await assert.rejects(
      call((cb) => userAsWorker.startAttempt({ runId, fold: 0, worker: 'x', delivery: 1 }, cb)),
      code(status.PERMISSION_DENIED, /user token may not call WorkerService.StartAttempt/),
    );
    const metrics = { epoch: 1, loss: 0.1, valLoss: 0.1, valMse: 0.1, seconds: 1, imagesPerSec: 10 };
    await assert.rejects(
      call((cb) => userAsWorker.reportEpoch({ attempt: { runId, fold: 0, token: 'x', jobId: '' }, metrics }, cb)),
      code(status.PERMISSION_DENIED, /ReportEpoch/),
    );
    // None of that changed the run.
    const run = await call<{ folds: { attempts: number }[] }>((cb) => user.getRun({ runId }, cb));
    assert.deepEqual(
      run.folds.map((f) => f.attempts),
      [0, 0],
    );

    // The CLI with a wrong token: a clear error and a non-zero exit code.
    const badFile = join(dir, 'bad-cluster.json');
    const parsed = JSON.parse(await readFile(clusterFile, 'utf8')) as { security: { token: string } };
    await writeFile(badFile, JSON.stringify({ ...parsed, security: { ...parsed.security, token: 'wrong-token-wrong-token-wrong' } }));
    const cliEnv = captureEnv(dir);
    assert.notEqual(await main(['run', 'list', '--cluster', badFile], cliEnv), 0);
    assert.match(cliEnv.err(), /invalid token/);

    // A worker started with a wrong token stops at once with a clear message and fails no fold.
    const badToken = 'a-wrong-worker-token-that-must-not-be-logged';
    const bad = cluster.addWorker({ CVC_TOKEN: badToken });
    const [exitCode] = (await once(bad, 'exit')) as [number];
    assert.equal(exitCode, 1);
    await new Promise((r) => setTimeout(r, 200));
    const badLog = await readFile(join(dir, 'logs', 'local-0.log'), 'utf8');
    assert.match(badLog, /refused this worker's credentials: invalid token/);
    assert.ok(!badLog.includes(badToken), 'the rejected token is not logged either');

    // Bounded concurrent uploads: with a limit of 1 and a 1.5 s queue, a second upload waits for the slot,
    // and is refused with a retry hint when the slot does not come in time.
    const first = await call<StartAttemptResponse>((cb) => worker.startAttempt({ runId, fold: 0, worker: 't', delivery: 1 }, cb));
    const a: AttemptRef = { runId, fold: 0, token: first.token, jobId: '' };
    const data = Buffer.from(new Uint8Array(256 * 1024).map((_, i) => i % 251));
    const up1 = startUpload(worker, a, 1, data);
    await new Promise((r) => setTimeout(r, 300));
    const up2 = startUpload(worker, a, 2, data);
    up2.finish();
    const busy = await up2.done.then(
      () => undefined,
      (e: ServiceError) => e,
    );
    assert.equal(busy?.code, status.RESOURCE_EXHAUSTED);
    assert.match(busy?.details ?? '', /too many concurrent checkpoint uploads \(limit 1\)/);
    assert.ok(Number(busy?.metadata.get(RETRY_AFTER_MS_KEY)[0]) > 0, 'a retry hint in the trailers');
    // This one queues behind the first and goes through once the first ends.
    const queued = startUpload(worker, a, 2, data);
    queued.finish();
    await new Promise((r) => setTimeout(r, 300));
    up1.finish();
    assert.equal((await up1.done).size, data.length);
    assert.equal((await queued.done).size, data.length);
    assert.equal((await storeOf(cluster).stat(`runs/${runId}/fold-0/checkpoints/epoch-0002.ckpt`))?.size, data.length);

    // Nothing secret in any log: coordinator, the refused worker.
    const bytes = await assertNoSecretsInLogs(cluster, [badToken]);
    assert.ok(bytes > 0);
  } finally {
    for (const c of clients) c.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
