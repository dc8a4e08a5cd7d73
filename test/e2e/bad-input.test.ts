import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import {
  CHECKPOINT_CHUNK_BYTES,
  CheckpointKind,
  FoldState,
  HealthClient,
  HealthCheckResponse_ServingStatus,
  type WorkerServiceClient,
  type AttemptRef,
  type StartAttemptResponse,
  type UploadCheckpointResponse,
} from '@cvc/proto';
import { main } from '@cvc/cli';
import { captureEnv, startLocalCluster } from '@cvc/cli/testing';
import { channel, getRun, importFashion, runClient, storeOf, submitFashionRun, workerClient } from './helpers.js';

type Cb<T> = (e: ServiceError | null, r: T) => void;
const call = <T>(f: (cb: Cb<T>) => unknown): Promise<T> => new Promise((res, rej) => void f((e, r) => (e ? rej(e) : res(r))));
const code =
  (c: status, re: RegExp) =>
  (e: unknown): boolean =>
    (e as ServiceError).code === c && re.test((e as ServiceError).details);

function upload(
  w: WorkerServiceClient,
  a: AttemptRef,
  epoch: number,
  data: Buffer,
  opts: { sha?: string; chunk?: number; size?: number } = {},
): Promise<UploadCheckpointResponse> {
  return new Promise((resolve, reject) => {
    const s = w.uploadCheckpoint((e, r) => (e ? reject(e) : resolve(r)));
    s.on('error', () => {});
    s.write({ header: { attempt: a, epoch, kind: CheckpointKind.CHECKPOINT_KIND_EPOCH, size: opts.size ?? data.length }, data: Buffer.alloc(0), sha256: '' });
    const step = opts.chunk ?? CHECKPOINT_CHUNK_BYTES;
    for (let i = 0; i < data.length; i += step) s.write({ data: data.subarray(i, i + step), sha256: '' });
    s.write({ data: Buffer.alloc(0), sha256: opts.sha ?? createHash('sha256').update(data).digest('hex') });
    s.end();
  });
}

test('bad input gets clear gRPC statuses and loses nothing; a coordinator restart loses nothing', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-bad-'));
  const cluster = await startLocalCluster({ dir, workers: 0 });
  const rc = runClient(cluster);
  let w = workerClient(cluster);
  try {
    const ch = channel(cluster, undefined);
    const health = new HealthClient(cluster.endpoints.coordinator, ch.creds, ch.options);
    const h = await call<{ status: HealthCheckResponse_ServingStatus }>((cb) => health.check({ service: '' }, cb));
    assert.equal(h.status, HealthCheckResponse_ServingStatus.SERVING);
    health.close();

    await importFashion(cluster, 2, 40);

    // A run spec is checked with the trainer's own schema: a bad number is INVALID_ARGUMENT naming
    // the proto field, never silently the default, and a seed of 0 is kept (not replaced by 42).
    const spec = { name: '', dataset: 'fashion-mnist', model: 'seed-mnist', folds: 2, epochs: 1, upsample: '', datasetVersion: '', modelConfigJson: '' };
    await assert.rejects(
      call((cb) => rc.submitRun({ spec: { ...spec, learningRate: Number.NaN } }, cb)),
      code(status.INVALID_ARGUMENT, /^spec\.learning_rate: must be a finite number, got NaN$/),
    );
    await assert.rejects(
      call((cb) => rc.submitRun({ spec: { ...spec, learningRate: Number.POSITIVE_INFINITY } }, cb)),
      code(status.INVALID_ARGUMENT, /^spec\.learning_rate: /),
    );
    await assert.rejects(
      call((cb) => rc.submitRun({ spec: { ...spec, epochs: -1 } }, cb)),
      code(status.INVALID_ARGUMENT, /^spec\.epochs: must be >= 1, got -1$/),
    );
    await assert.rejects(
      call((cb) => rc.submitRun({ spec: { ...spec, folds: 0 } }, cb)),
      code(status.INVALID_ARGUMENT, /^spec\.folds: must be >= 2, got 0$/),
    );
    await assert.rejects(
      call((cb) => rc.submitRun({ spec: { ...spec, batchSize: 0 } }, cb)),
      code(status.INVALID_ARGUMENT, /^spec\.batch_size: must be >= 1, got 0$/),
    );
    // A model config that does not fit the dataset (28x28: a third 2x2 pooling of the 7x7 map) is refused naming the field.
    const tooDeep = JSON.stringify({
      encoder: [
        { filters: 8, pool: 2 },
        { filters: 8, pool: 2 },
        { filters: 8, pool: 2 },
      ],
      codeSize: 4,
    });
    await assert.rejects(
      call((cb) => rc.submitRun({ spec: { ...spec, model: 'custom', modelConfigJson: tooDeep } }, cb)),
      code(status.INVALID_ARGUMENT, /^spec\.model_config\.encoder\[2\]\.pool: pool 2 does not divide the 7x7 map/),
    );
    await assert.rejects(
      call((cb) => rc.submitRun({ spec: { ...spec, model: 'custom', modelConfigJson: JSON.stringify({ encoder: [{ filters: 0 }], codeSize: 4 }) } }, cb)),
      code(status.INVALID_ARGUMENT, /^spec\.model_config\.encoder\[0\]\.filters: must be >= 1$/),
    );
    assert.equal((await call<{ runs: unknown[] }>((cb) => rc.listRuns({ pageSize: 0, pageToken: '' }, cb))).runs.length, 0, 'no refused spec was recorded');
    // Through the CLI: `--seed 0` sends 0, and the recorded run's spec has it, with every other field filled in.
    const seedEnv = captureEnv(dir);
    assert.equal(
      await main(
        [
          'run',
          'submit',
          '--dataset',
          'fashion-mnist',
          '--model',
          'seed-mnist',
          '--folds',
          '2',
          '--epochs',
          '1',
          '--seed',
          '0',
          '--cluster',
          join(dir, 'cluster.json'),
        ],
        seedEnv,
      ),
      0,
      seedEnv.err(),
    );
    const seedRunId = seedEnv.out().trim();
    const seedRun = await getRun(rc, seedRunId);
    assert.equal(seedRun.spec?.seed, 0);
    assert.deepEqual(
      [seedRun.spec?.folds, seedRun.spec?.epochs, seedRun.spec?.batchSize, seedRun.spec?.learningRate, seedRun.spec?.upsample],
      [2, 1, 32, 1e-4, 'nearest'],
    );
    await call((cb) => rc.cancelRun({ runId: seedRunId }, cb));

    const runId = await submitFashionRun(cluster, 2, 3);

    await assert.rejects(
      call((cb) => w.startAttempt({ runId: 'no-such-run', fold: 0, worker: 't', delivery: 1 }, cb)),
      code(status.NOT_FOUND, /run no-such-run does not exist/),
    );
    await assert.rejects(
      call((cb) => w.startAttempt({ runId: '../../etc', fold: 0, worker: 't', delivery: 1 }, cb)),
      code(status.INVALID_ARGUMENT, /malformed/),
    );
    await assert.rejects(
      call((cb) => w.startAttempt({ runId, fold: 9, worker: 't', delivery: 1 }, cb)),
      code(status.INVALID_ARGUMENT, /no fold 9/),
    );

    const first = await call<StartAttemptResponse>((cb) => w.startAttempt({ runId, fold: 0, worker: 't', delivery: 1 }, cb));
    assert.ok(first.proceed && first.token);
    assert.match(first.manifest, /^datasets\/fashion-mnist\/[0-9a-f]{16}\/manifest\.json$/);
    const a: AttemptRef = { runId, fold: 0, token: first.token, jobId: '' };
    const good = Buffer.from(new Uint8Array(3 << 20).map((_, i) => i % 253));
    const stored = await upload(w, a, 1, good);
    assert.equal(stored.size, good.length);
    const store = storeOf(cluster);
    const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

    // A second attempt takes over the fold; the first one's token is now stale.
    const second = await call<StartAttemptResponse>((cb) => w.startAttempt({ runId, fold: 0, worker: 't2', delivery: 2 }, cb));
    assert.equal(second.resumeCheckpoint, stored.key, 'the new attempt resumes from the stored checkpoint');
    const metrics = { epoch: 1, loss: 0.1, valLoss: 0.1, valMse: 0.1, seconds: 1, imagesPerSec: 10 };
    await assert.rejects(
      call((cb) => w.reportEpoch({ attempt: a, metrics }, cb)),
      code(status.FAILED_PRECONDITION, /stale attempt token/),
    );
    await assert.rejects(upload(w, a, 2, good), code(status.FAILED_PRECONDITION, /stale attempt token/));
    const b: AttemptRef = { runId, fold: 0, token: second.token, jobId: '' };
    await call((cb) => w.reportEpoch({ attempt: b, metrics }, cb));
    await assert.rejects(
      call((cb) => w.reportEpoch({ attempt: b, metrics: { ...metrics, loss: Number.NaN } }, cb)),
      code(status.INVALID_ARGUMENT, /finite losses/),
    );

    // A checkpoint whose sha256 does not match: refused, and the stored one is untouched.
    const other = Buffer.from(good).fill(7, 0, 1000);
    await assert.rejects(upload(w, b, 1, other, { sha: sha(good) }), code(status.DATA_LOSS, /does not match|expected/));
    assert.equal(sha(await store.getBytes(stored.key)), sha(good));
    // A message over the size limit, and a checkpoint over the cap.
    await assert.rejects(upload(w, b, 2, Buffer.alloc(5 << 20), { chunk: 5 << 20 }), (e: unknown) => (e as ServiceError).code === status.RESOURCE_EXHAUSTED);
    assert.equal(await store.stat(`runs/${runId}/fold-0/checkpoints/epoch-0002.ckpt`), undefined);
    await assert.rejects(upload(w, b, 2, good, { size: 1e12 }), code(status.RESOURCE_EXHAUSTED, /exceeds the limit/));

    // The coordinator dies and comes back: the run, its fold state and its checkpoint are all there.
    const before = await getRun(rc, runId);
    w.close();
    await cluster.restartCoordinator();
    w = workerClient(cluster);
    const after = await getRun(rc, runId);
    assert.deepEqual(after.folds, before.folds);
    assert.equal(after.folds[0]?.state, FoldState.FOLD_STATE_RUNNING);
    assert.equal(after.folds[0]?.lastCheckpoint, stored.key);
    assert.equal(after.folds[0]?.epochReports, 1);
    // The surviving attempt's token still works after the restart.
    await call((cb) => w.reportEpoch({ attempt: b, metrics: { ...metrics, epoch: 2 } }, cb));
    assert.equal((await getRun(rc, runId)).folds[0]?.epochReports, 2);
    // The same report again (a retry whose first answer was lost): applied once, not counted twice.
    await call((cb) => w.reportEpoch({ attempt: b, metrics: { ...metrics, epoch: 2 } }, cb));
    assert.equal((await getRun(rc, runId)).folds[0]?.epochReports, 2);
  } finally {
    w.close();
    rc.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
