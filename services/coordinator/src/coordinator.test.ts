// The coordinator's state machine over the in-memory task queue, document
// store and object store (@cvc/testkit): no servers, no TensorFlow.js
// training, milliseconds per test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { CheckpointKind, EpochMetrics, EvalMetrics, FoldState, Run, RunState, type AttemptRef, type RunEvent, type RunSpec } from '@cvc/proto';
import { createDatasetCatalog, StorageError } from '@cvc/storage';
import {
  createMemoryDocStore,
  createMemoryObjectStore,
  createMemoryTaskQueue,
  type MemoryDocStore,
  type MemoryObjectStore,
  type MemoryTaskQueue,
} from '@cvc/testkit';
import { Coordinator } from './coordinator.js';
import { CoordinatorError, FinalizeError, MAX_ERROR_CHARS } from './errors.js';
import type { ArtifactExporter } from './export-artifacts.js';
import { REQUEUE_WINDOW_MS } from './live-attempt.js';
import { runKey, type RunDoc } from './run-doc.js';

const DATASET = 'fashion-mnist';
const MANIFEST = `datasets/${DATASET}/v1/manifest.json`;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

interface World {
  readonly store: MemoryObjectStore;
  readonly queue: MemoryTaskQueue;
  readonly runs: MemoryDocStore<RunDoc>;
  /** Run ids the default exporter was called for, in order. */
  readonly exported: string[];
  /** A coordinator over the world's stores (a new one is a restarted coordinator). */
  coordinator(exportArtifacts?: ArtifactExporter): Coordinator;
}

/** The stores, with fashion-mnist imported as 28x28x1 with 2 folds (the catalog's index only: nothing here reads shards). */
async function world(opts: { maxDeliver?: number } = {}): Promise<World> {
  const store = createMemoryObjectStore();
  const queue = createMemoryTaskQueue({ maxDeliver: opts.maxDeliver ?? 3 });
  const runs = createMemoryDocStore<RunDoc>();
  await createDatasetCatalog(store).register(DATASET, {
    version: 'v1',
    folds: 2,
    scheme: 'stratified',
    seed: 42,
    limit: 200,
    manifest: MANIFEST,
    height: 28,
    width: 28,
    channels: 1,
  });
  const exported: string[] = [];
  // Writes the same keys as the real export, with stand-in bytes.
  const fakeExport: ArtifactExporter = async ({ run, store: s }) => {
    exported.push(run.id);
    await s.put(`runs/${run.id}/encoder/model.json`, enc('{"format":"layers-model"}'));
    await s.put(`runs/${run.id}/encoder/weights.bin`, new Uint8Array([1, 2, 3]));
    for (const p of ['originals', 'reconstructions', 'loss-curves']) await s.put(`runs/${run.id}/report/${p}.png`, new Uint8Array([137, 80, 78, 71]));
    return `runs/${run.id}/encoder`;
  };
  let clock = Date.UTC(2026, 0, 2, 3, 4, 5);
  return {
    store,
    queue,
    runs,
    exported,
    coordinator: (exportArtifacts = fakeExport) =>
      new Coordinator({ store, queue, runs, exportArtifacts, finalizeRetry: { initialMs: 1, maxMs: 4 }, now: () => (clock += 1000) }),
  };
}

const spec = (over: Partial<RunSpec> = {}): RunSpec => ({
  name: '',
  dataset: DATASET,
  model: 'seed-mnist',
  folds: 2,
  epochs: 1,
  upsample: '',
  datasetVersion: '',
  modelConfigJson: '',
  ...over,
});
const epoch = (n: number, valLoss = 0.5): EpochMetrics =>
  EpochMetrics.fromPartial({ epoch: n, loss: valLoss + 0.1, valLoss, valMse: valLoss, seconds: 1, imagesPerSec: 100 });
const evalOf = (loss: number): EvalMetrics => EvalMetrics.fromPartial({ loss, mse: loss, count: 10 });
/** A hang (say, a finalisation awaited inside FinishFold behind a held export) fails the test instead of blocking the run. */
const T = { timeout: 10_000 };
const outcome = (o: string) => (e: unknown) => e instanceof CoordinatorError && e.outcome === o;

async function start(c: Coordinator, runId: string, fold: number, delivery = 1): Promise<AttemptRef> {
  const s = await c.startAttempt({ runId, fold, worker: `w${fold}`, delivery });
  assert.ok(s.proceed, s.reason);
  return { runId, fold, token: s.token, jobId: '' };
}

async function* bytes(b: Uint8Array): AsyncGenerator<Uint8Array> {
  yield await Promise.resolve(b);
}
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function upload(c: Coordinator, a: AttemptRef, kind: CheckpointKind, ep: number, data = new Uint8Array([ep, 2, 3])): Promise<string> {
  return (await c.uploadCheckpoint({ attempt: a, epoch: ep, kind, size: data.length }, bytes(data), () => sha(data))).key;
}

/** One attempt that trains `epochs` epochs, stores its checkpoints and finishes with validation loss `val`. */
async function trainFold(c: Coordinator, runId: string, fold: number, val: number, o: { epochs?: number; best?: boolean } = {}): Promise<AttemptRef> {
  const a = await start(c, runId, fold);
  for (let e = 1; e <= (o.epochs ?? 1); e++) {
    await c.reportEpoch(a, epoch(e, val));
    await upload(c, a, CheckpointKind.CHECKPOINT_KIND_EPOCH, e);
  }
  if (o.best ?? true) await upload(c, a, CheckpointKind.CHECKPOINT_KIND_BEST, o.epochs ?? 1);
  await c.finishFold({ attempt: a, bestEpoch: 1, train: evalOf(val + 0.1), val: evalOf(val), test: evalOf(val + 0.05) });
  return a;
}

const summaryJson = async (w: World, runId: string): Promise<Run> =>
  Run.fromJSON(JSON.parse(new TextDecoder().decode(await w.store.getBytes(`runs/${runId}/summary.json`))));

test('submit validates the spec against the catalog, records the run and enqueues one task per fold', T, async () => {
  const w = await world();
  const c = w.coordinator();
  await assert.rejects(c.submitRun(spec({ dataset: 'cifar-10' })), outcome('NOT_FOUND'));
  await assert.rejects(c.submitRun(spec({ folds: 3 })), (e: unknown) => outcome('FAILED_PRECONDITION')(e) && /2 folds, not 3/.test((e as Error).message));
  await assert.rejects(c.submitRun(spec({ datasetVersion: 'v9' })), outcome('NOT_FOUND'));
  await assert.rejects(
    c.submitRun(spec({ model: 'seed-cifar' })),
    (e: unknown) => outcome('INVALID_ARGUMENT')(e) && /32x32x3 images; dataset fashion-mnist has 28x28x1/.test((e as Error).message),
  );
  await assert.rejects(c.submitRun(spec({ model: 'resnet' })), outcome('INVALID_ARGUMENT'));
  await assert.rejects(c.submitRun(undefined), outcome('INVALID_ARGUMENT'));
  assert.deepEqual(await w.runs.keys(), [], 'nothing recorded for a refused spec');
  assert.deepEqual(w.queue.records(), []);

  const run = await c.submitRun(spec({ name: 'demo' }));
  assert.match(run.id, /^demo-20260102-0304\d\d-[0-9a-f]{6}$/);
  assert.equal(run.state, RunState.RUN_STATE_PENDING);
  assert.equal(run.datasetVersion, 'v1');
  assert.deepEqual(
    run.folds.map((f) => f.state),
    [FoldState.FOLD_STATE_PENDING, FoldState.FOLD_STATE_PENDING],
  );
  assert.deepEqual(
    w.queue.records().map((r) => r.task),
    [
      { runId: run.id, fold: 0 },
      { runId: run.id, fold: 1 },
    ],
  );
  const doc = (await w.runs.get(runKey(run.id)))?.value;
  assert.equal(doc?.manifest, MANIFEST);
  assert.deepEqual(doc?.tokens, ['', '']);
  assert.deepEqual(
    (await c.listRuns()).map((r) => r.id),
    [run.id],
  );
  await assert.rejects(c.getRun('no-such-run'), outcome('NOT_FOUND'));
  await assert.rejects(c.getRun('../etc'), outcome('INVALID_ARGUMENT'));
});

test('a spec without folds takes the fold count of the import it trains on (the named version, else the newest); given folds win', T, async () => {
  const w = await world();
  const c = w.coordinator();
  await createDatasetCatalog(w.store).register(DATASET, {
    version: 'v2',
    folds: 3,
    scheme: 'stratified',
    seed: 42,
    limit: 200,
    manifest: MANIFEST,
    height: 28,
    width: 28,
    channels: 1,
  });
  const newest = await c.submitRun(spec({ folds: undefined }));
  assert.deepEqual([newest.datasetVersion, newest.folds.length, newest.spec?.folds], ['v2', 3, 3]);
  const named = await c.submitRun(spec({ folds: undefined, datasetVersion: 'v1' }));
  assert.deepEqual([named.datasetVersion, named.folds.length], ['v1', 2]);
  const given = await c.submitRun(spec({ folds: 2 }));
  assert.deepEqual([given.datasetVersion, given.folds.length], ['v1', 2]);
  await assert.rejects(
    c.submitRun(spec({ folds: undefined, dataset: 'cifar-10' })),
    (e: unknown) => outcome('NOT_FOUND')(e) && /--folds 5/.test((e as Error).message),
  );
});

test('submit checks a model config against the dataset before queueing anything, naming the field; the stored spec has it resolved', T, async () => {
  const w = await world();
  const c = w.coordinator();
  const refused = async (over: Partial<RunSpec>, re: RegExp): Promise<void> => {
    await assert.rejects(c.submitRun(spec(over)), (e: unknown) => outcome('INVALID_ARGUMENT')(e) && re.test((e as Error).message));
  };
  const cfg = (o: object): string => JSON.stringify({ encoder: [{ filters: 8, pool: 2 }, { filters: 16, pool: 2 }, { filters: 16 }], codeSize: 4, ...o });
  // Field-level errors (resolveSpec) and fit errors (the dataset's 28x28x1).
  await refused({ model: 'custom', modelConfigJson: cfg({ codeSize: 0 }) }, /^spec\.model_config\.codeSize: must be >= 1$/);
  await refused({ model: 'custom', modelConfigJson: cfg({ loss: 'hinge' }) }, /^spec\.model_config\.loss: must be one of mse, mse-cosine, bce$/);
  await refused(
    { model: 'custom', modelConfigJson: cfg({ encoder: [{ filters: 8, activation: 'swish' }] }) },
    /^spec\.model_config\.encoder\[0\]\.activation: must be one of/,
  );
  await refused(
    {
      model: 'custom',
      modelConfigJson: cfg({
        encoder: [
          { filters: 8, pool: 2 },
          { filters: 8, pool: 2 },
          { filters: 8, pool: 2 },
        ],
      }),
    },
    /^spec\.model_config\.encoder\[2\]\.pool: pool 2 does not divide the 7x7 map/,
  );
  await refused(
    {
      model: 'custom',
      modelConfigJson: cfg({
        encoder: [
          { filters: 8, pool: 28 },
          { filters: 8, kernel: 1, stride: 2 },
        ],
      }),
    },
    /^spec\.model_config\.encoder\[1\]\.stride: stride 2 takes the 1x1 map below one pixel/,
  );
  await refused(
    { model: 'custom', modelConfigJson: cfg({ encoder: [{ filters: 8, kernel: 31 }] }) },
    /^spec\.model_config\.encoder\[0\]\.kernel: kernel 31 is larger than the 28x28 map/,
  );
  await refused(
    { model: 'custom', modelConfigJson: cfg({ input: { height: 32, width: 32, channels: 3 } }) },
    /^spec\.model_config\.input: the model takes 32x32x3 images, the dataset's are 28x28x1/,
  );
  await refused({ model: 'custom', modelConfigJson: '{ nope' }, /^spec\.model_config_json: not JSON/);
  await refused({ model: 'custom' }, /^spec\.model_config_json: required for model custom/);
  await refused({ model: 'seed-mnist', modelConfigJson: cfg({}) }, /^spec\.model: seed-mnist is a fixed preset/);
  await refused(
    { model: 'custom', modelConfigJson: cfg({ upsample: 'nearest' }), upsample: 'bilinear' },
    /^spec\.upsample: 'bilinear' conflicts with model_config\.upsample 'nearest'/,
  );
  assert.deepEqual(await w.runs.keys(), [], 'nothing recorded for a refused config');
  assert.deepEqual(w.queue.records(), []);

  const run = await c.submitRun(spec({ model: 'custom', modelConfigJson: cfg({ init: 'he' }), upsample: 'bilinear' }));
  const stored = JSON.parse(run.spec?.modelConfigJson ?? '') as Record<string, unknown>;
  assert.deepEqual(stored['input'], { height: 28, width: 28, channels: 1 }, "the input shape is the dataset's");
  assert.equal(stored['init'], 'he-normal');
  assert.equal(stored['upsample'], 'bilinear');
  assert.equal(stored['loss'], 'mse', 'defaults filled in');
  assert.equal(run.spec?.upsample, 'bilinear');
  // A preset is stored resolved too; `cae` takes the dataset's shape.
  const preset = await c.submitRun(spec());
  assert.equal((JSON.parse(preset.spec?.modelConfigJson ?? '') as { codeSize: number }).codeSize, 10);
  const cae = await c.submitRun(spec({ model: 'cae' }));
  assert.deepEqual((JSON.parse(cae.spec?.modelConfigJson ?? '') as { input: unknown }).input, { height: 28, width: 28, channels: 1 });
  assert.equal(w.queue.records().length, 6);
});

test('each attempt gets a new token; a stale token is refused; the new attempt resumes from the last checkpoint', T, async () => {
  const w = await world();
  const c = w.coordinator();
  const { id } = await c.submitRun(spec({ epochs: 3 }));
  const first = await start(c, id, 0);
  const s = await c.startAttempt({ runId: id, fold: 0, worker: 'w0', delivery: 1 });
  assert.equal(s.manifest, MANIFEST);
  assert.equal(s.spec?.epochs, 3);
  assert.equal(s.resumeCheckpoint, '');
  await assert.rejects(c.startAttempt({ runId: id, fold: 7, worker: 'w', delivery: 1 }), outcome('INVALID_ARGUMENT'));
  assert.equal((await c.getRun(id)).state, RunState.RUN_STATE_RUNNING);

  const a1: AttemptRef = { runId: id, fold: 0, token: s.token, jobId: '' };
  await c.reportEpoch(a1, epoch(1));
  const key = await upload(c, a1, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1);
  assert.equal(key, `runs/${id}/fold-0/checkpoints/epoch-0001.ckpt`);
  // The first attempt was replaced (its task was redelivered): it is refused everywhere.
  await assert.rejects(c.reportEpoch(first, epoch(1)), (e: unknown) => outcome('FAILED_PRECONDITION')(e) && /stale attempt token/.test((e as Error).message));
  await assert.rejects(upload(c, first, CheckpointKind.CHECKPOINT_KIND_EPOCH, 2), outcome('FAILED_PRECONDITION'));
  await assert.rejects(c.finishFold({ attempt: first, bestEpoch: 1 }), outcome('FAILED_PRECONDITION'));
  await assert.rejects(c.reportEpoch({ ...a1, token: '' }, epoch(2)), outcome('FAILED_PRECONDITION'));
  assert.deepEqual(
    w.store.keys().filter((k) => k.includes('fold-0')),
    [key],
    'the stale upload stored nothing',
  );

  const third = await c.startAttempt({ runId: id, fold: 0, worker: 'w9', delivery: 2 });
  assert.ok(third.proceed);
  assert.equal(third.resumeCheckpoint, key);
  const f = (await c.getRun(id)).folds[0];
  assert.equal(f?.attempts, 3);
  assert.equal(f?.resumedFromEpoch, 1);
  assert.equal(f?.worker, 'w9');
  await assert.rejects(c.reportEpoch(a1, epoch(2)), outcome('FAILED_PRECONDITION'));
});

test("a replaced attempt whose best-checkpoint upload lands late cannot overwrite the new attempt's; its object is removed", T, async () => {
  const w = await world();
  const c = w.coordinator();
  const { id } = await c.submitRun(spec());
  const old = await start(c, id, 0);
  // The old attempt's upload passes the token check, then its bytes are slow to come...
  let release: () => void = () => undefined;
  const held = new Promise<void>((r) => (release = r));
  const oldBytes = new Uint8Array([9, 9, 9]);
  async function* slow(): AsyncGenerator<Uint8Array> {
    await held;
    yield oldBytes;
  }
  const late = c.uploadCheckpoint({ attempt: old, epoch: 1, kind: CheckpointKind.CHECKPOINT_KIND_BEST, size: 3 }, slow(), () => sha(oldBytes));
  // ...meanwhile its task is redelivered: the new attempt trains, stores its best checkpoint and finishes.
  const fresh = await start(c, id, 0, 2);
  await c.reportEpoch(fresh, epoch(1));
  const newBytes = new Uint8Array([1, 2, 3]);
  const key = await upload(c, fresh, CheckpointKind.CHECKPOINT_KIND_BEST, 1, newBytes);
  assert.equal(key, `runs/${id}/fold-0/best/attempt-2.ckpt`);
  await c.finishFold({ attempt: fresh, bestEpoch: 1, train: evalOf(0.6), val: evalOf(0.5), test: evalOf(0.55) });
  release();
  await assert.rejects(late, outcome('FAILED_PRECONDITION'));
  assert.equal((await c.getRun(id)).folds[0]?.bestCheckpoint, key);
  assert.deepEqual([...(await w.store.getBytes(key))], [...newBytes], "the recorded best checkpoint holds the new attempt's bytes");
  assert.deepEqual(
    w.store.keys().filter((k) => k.includes('/best/')),
    [key],
    'the late upload left no object behind',
  );
});

test('FinishFold with a NaN, infinite or negative metric is INVALID_ARGUMENT naming it, and the fold stays running', T, async () => {
  const w = await world();
  const c = w.coordinator();
  const { id } = await c.submitRun(spec({ epochs: 1 }));
  const a = await start(c, id, 0);
  for (const [bad, field] of [
    [{ val: evalOf(Number.NaN) }, /val\.loss/],
    [{ test: EvalMetrics.fromPartial({ loss: 0.1, mse: Number.POSITIVE_INFINITY }) }, /test\.mse/],
    [{ train: evalOf(-0.5) }, /train: loss and mse must be >= 0/],
  ] as const) {
    await assert.rejects(
      c.finishFold({ attempt: a, bestEpoch: 1, ...bad }),
      (e: unknown) => outcome('INVALID_ARGUMENT')(e) && field.test((e as Error).message),
    );
  }
  assert.equal((await c.getRun(id)).folds[0]?.state, FoldState.FOLD_STATE_RUNNING);
  await c.finishFold({ attempt: a, bestEpoch: 1, train: evalOf(0.2), val: evalOf(0.2), test: evalOf(0.2) });
  assert.equal((await c.getRun(id)).folds[0]?.state, FoldState.FOLD_STATE_SUCCEEDED);
});

test(
  "a retried FinishFold from the attempt whose finish landed (its first answer was lost) is answered OK, changing nothing; another attempt's is still stale",
  T,
  async () => {
    const w = await world();
    const c = w.coordinator();
    const { id } = await c.submitRun(spec({ epochs: 1 }));
    const a = await start(c, id, 0);
    const req = { attempt: a, bestEpoch: 1, train: evalOf(0.2), val: evalOf(0.2), test: evalOf(0.2) };
    assert.deepEqual(await c.finishFold(req), { stop: false, reason: '' });
    const before = (await c.getRun(id)).folds[0];
    assert.deepEqual(await c.finishFold({ ...req, val: evalOf(0.9) }), { stop: false, reason: '' }, 'the retry is OK');
    assert.deepEqual((await c.getRun(id)).folds[0], before, 'and recorded nothing twice');
    await assert.rejects(c.finishFold({ ...req, attempt: { ...a, token: 'another' } }), outcome('FAILED_PRECONDITION'));
    await assert.rejects(c.finishFold({ ...req, attempt: { ...a, token: '' } }), outcome('FAILED_PRECONDITION'));
  },
);

test('FinishFold after the run was stopped early is answered stop (the result is not recorded; the fold stays STOPPED)', T, async () => {
  const w = await world();
  const c = w.coordinator();
  const { id } = await c.submitRun(spec({ epochs: 1 }));
  const a = await start(c, id, 0);
  await c.stopRun(id, 'asha rung 1');
  const ack = await c.finishFold({ attempt: a, bestEpoch: 1, train: evalOf(0.2), val: evalOf(0.2), test: evalOf(0.2) });
  assert.equal(ack.stop, true);
  assert.match(ack.reason, /run stopped early: asha rung 1/);
  assert.equal((await c.getRun(id)).folds[0]?.state, FoldState.FOLD_STATE_STOPPED);
});

test(
  'a bad resume checkpoint falls back to the newest older stored one: history cut to it, resumed_from_epoch and checkpoint_fallback say so; a retry changes nothing; then a fresh start',
  T,
  async () => {
    const w = await world();
    const c = w.coordinator();
    const { id } = await c.submitRun(spec({ epochs: 5 }));
    const a1 = await start(c, id, 0);
    for (const e of [1, 2, 3]) {
      await c.reportEpoch(a1, epoch(e));
      await upload(c, a1, CheckpointKind.CHECKPOINT_KIND_EPOCH, e);
    }
    // Epoch 4 was reported but its checkpoint never landed; epoch 2's object is gone (a lifecycle rule, say).
    await c.reportEpoch(a1, epoch(4));
    await w.store.remove(`runs/${id}/fold-0/checkpoints/epoch-0002.ckpt`);
    const s = await c.startAttempt({ runId: id, fold: 0, worker: 'w1', delivery: 2 });
    const a2: AttemptRef = { runId: id, fold: 0, token: s.token, jobId: '' };
    const bad3 = `runs/${id}/fold-0/checkpoints/epoch-0003.ckpt`;
    assert.equal(s.resumeCheckpoint, bad3);
    await assert.rejects(c.reportBadCheckpoint({ attempt: a1, checkpoint: bad3, reason: 'x' }), outcome('FAILED_PRECONDITION'), 'a stale attempt is refused');

    const r = await c.reportBadCheckpoint({ attempt: a2, checkpoint: bad3, reason: 'CHECKPOINT_CORRUPT: bad magic' });
    const one = `runs/${id}/fold-0/checkpoints/epoch-0001.ckpt`;
    assert.deepEqual(r, { resumeCheckpoint: one, resumeEpoch: 1 }, 'epoch 2 is gone: epoch 1 is the newest older one');
    let f = (await c.getRun(id)).folds[0];
    assert.deepEqual(
      f?.history.map((h) => h.epoch),
      [1],
      'the epochs after the fallback are trained again',
    );
    assert.equal(f?.lastCheckpoint, one);
    assert.equal(f?.lastCheckpointEpoch, 1);
    assert.equal(f?.resumedFromEpoch, 1);
    assert.match(f?.checkpointFallback ?? '', /epoch-0003\.ckpt \(epoch 3\) could not be used: CHECKPOINT_CORRUPT: bad magic; restarted from epoch 1/);
    // The answer was lost and the worker retries: the same answer, nothing changes.
    assert.deepEqual(await c.reportBadCheckpoint({ attempt: a2, checkpoint: bad3, reason: 'CHECKPOINT_CORRUPT: bad magic' }), r);
    assert.deepEqual((await c.getRun(id)).folds[0], f);
    // Epoch 2 is trained and reported again, once, and its checkpoint is the latest again.
    await c.reportEpoch(a2, epoch(2, 0.3));
    await upload(c, a2, CheckpointKind.CHECKPOINT_KIND_EPOCH, 2);
    f = (await c.getRun(id)).folds[0];
    assert.deepEqual(
      f?.history.map((h) => [h.epoch, h.valLoss]),
      [
        [1, 0.5],
        [2, 0.3],
      ],
    );
    assert.equal(f?.lastCheckpointEpoch, 2);

    // The next attempt finds epoch 2 unusable too, and epoch 1 as well: a fresh start.
    const s3 = await c.startAttempt({ runId: id, fold: 0, worker: 'w2', delivery: 3 });
    const a3: AttemptRef = { runId: id, fold: 0, token: s3.token, jobId: '' };
    const r2 = await c.reportBadCheckpoint({ attempt: a3, checkpoint: s3.resumeCheckpoint, reason: 'CHECKPOINT_MISMATCH' });
    assert.deepEqual(r2, { resumeCheckpoint: one, resumeEpoch: 1 });
    assert.deepEqual(await c.reportBadCheckpoint({ attempt: a3, checkpoint: one, reason: 'CHECKPOINT_MISMATCH' }), { resumeCheckpoint: '', resumeEpoch: 0 });
    f = (await c.getRun(id)).folds[0];
    assert.deepEqual(f?.history, []);
    assert.equal(f?.lastCheckpoint, '');
    assert.equal(f?.resumedFromEpoch, 0);
    assert.match(
      f?.checkpointFallback ?? '',
      /epoch-0001\.ckpt \(epoch 1\) could not be used: CHECKPOINT_MISMATCH; restarted from epoch 0 \(no older checkpoint is stored\)/,
    );
    await c.reportEpoch(a3, epoch(1));
    await upload(c, a3, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1);
    assert.equal((await c.getRun(id)).folds[0]?.lastCheckpoint, one, 'a fresh start stores its epochs as the latest again');
  },
);

test(
  'a resume checkpoint a worker says is missing (NOT_FOUND) is looked up first: one that is stored is kept and offered again; one that is gone falls back',
  T,
  async () => {
    const w = await world();
    const c = w.coordinator();
    const { id } = await c.submitRun(spec({ epochs: 3 }));
    const a1 = await start(c, id, 0);
    for (const e of [1, 2]) {
      await c.reportEpoch(a1, epoch(e));
      await upload(c, a1, CheckpointKind.CHECKPOINT_KIND_EPOCH, e);
    }
    const s = await c.startAttempt({ runId: id, fold: 0, worker: 'w1', delivery: 2 });
    const a2: AttemptRef = { runId: id, fold: 0, token: s.token, jobId: '' };
    const two = `runs/${id}/fold-0/checkpoints/epoch-0002.ckpt`;
    const before = (await c.getRun(id)).folds[0];
    const missing = `NOT_FOUND: ${two}: get: no such object`;
    assert.deepEqual(await c.reportBadCheckpoint({ attempt: a2, checkpoint: two, reason: missing }), { resumeCheckpoint: two, resumeEpoch: 2 });
    assert.deepEqual((await c.getRun(id)).folds[0], before, "a stored checkpoint is not dropped on the worker's word");
    await w.store.remove(two);
    assert.deepEqual(await c.reportBadCheckpoint({ attempt: a2, checkpoint: two, reason: missing }), {
      resumeCheckpoint: `runs/${id}/fold-0/checkpoints/epoch-0001.ckpt`,
      resumeEpoch: 1,
    });
  },
);

test('a run watch whose KV watch ends under it (NATS gone) fails UNAVAILABLE, so the client watches again, instead of hanging', T, async () => {
  const w = await world();
  const c = w.coordinator();
  const { id } = await c.submitRun(spec());
  const events: RunEvent[] = [];
  const watching = c.watchRun(id, (e) => events.push(e), new AbortController().signal);
  await new Promise((r) => setTimeout(r, 5));
  w.runs.endWatches(runKey(id), new Error('connection closed'));
  await assert.rejects(watching, (e: unknown) => outcome('UNAVAILABLE')(e) && /connection closed; watch again/.test((e as Error).message));
  assert.ok(events.length >= 1, 'the current state was sent first');
});

test('a repeated epoch report is counted once; progress is kept while running and cleared when the fold ends', T, async () => {
  const w = await world();
  const c = w.coordinator();
  const { id } = await c.submitRun(spec({ epochs: 2 }));
  const a = await start(c, id, 0);
  await c.reportEpoch(a, epoch(1, 0.4));
  await c.reportEpoch(a, epoch(1, 0.4));
  await assert.rejects(c.reportEpoch(a, epoch(0)), outcome('INVALID_ARGUMENT'));
  await assert.rejects(c.reportEpoch(a, { ...epoch(2), loss: NaN }), outcome('INVALID_ARGUMENT'));
  await c.reportProgress(a, { epoch: 2, epochs: 2, images: 50, totalImages: 100, imagesPerSec: 10, loss: 0.3, etaSeconds: 5, updatedAtMs: 0 });
  await assert.rejects(
    c.reportProgress(a, { epoch: 2, epochs: 2, images: 500, totalImages: 100, imagesPerSec: 10, loss: 0.3, etaSeconds: 5, updatedAtMs: 0 }),
    outcome('INVALID_ARGUMENT'),
  );
  let f = (await c.getRun(id)).folds[0];
  assert.equal(f?.epochReports, 1);
  assert.deepEqual(
    f?.history.map((h) => h.epoch),
    [1],
  );
  assert.equal(f?.progress?.images, 50);
  assert.ok((f?.progress?.updatedAtMs ?? 0) > 0, 'stamped with the coordinator clock');
  await c.reportEpoch(a, epoch(2, 0.3));
  await c.failFold({ attempt: a, error: 'worker shutting down', final: false });
  f = (await c.getRun(id)).folds[0];
  assert.equal(f?.state, FoldState.FOLD_STATE_PENDING);
  assert.equal(f?.progress, undefined, 'no progress once the fold left RUNNING');
  assert.equal(f?.epochReports, 2);
  await assert.rejects(
    c.reportProgress(a, { epoch: 2, epochs: 2, images: 60, totalImages: 100, imagesPerSec: 10, loss: 0.3, etaSeconds: 5, updatedAtMs: 0 }),
    outcome('FAILED_PRECONDITION'),
  );
});

test('a checkpoint whose sha256 does not match is DATA_LOSS and leaves the previous checkpoint in place', T, async () => {
  const w = await world();
  const c = w.coordinator();
  const { id } = await c.submitRun(spec({ epochs: 2 }));
  const a = await start(c, id, 1);
  const good = await upload(c, a, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1);
  const data = new Uint8Array([9, 9, 9]);
  await assert.rejects(
    c.uploadCheckpoint({ attempt: a, epoch: 2, kind: CheckpointKind.CHECKPOINT_KIND_EPOCH, size: 3 }, bytes(data), () => 'ab'.repeat(32)),
    outcome('DATA_LOSS'),
  );
  assert.equal((await c.getRun(id)).folds[1]?.lastCheckpoint, good);
  assert.equal(w.store.object(`runs/${id}/fold-1/checkpoints/epoch-0002.ckpt`), undefined);
});

test(
  'the last fold to finish moves the run to FINALIZING; finalisation runs afterwards, outside the call, and ends SUCCEEDED with summary, encoder and report',
  T,
  async () => {
    const w = await world();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const c = w.coordinator(async (input) => {
      await gate;
      return `runs/${input.run.id}/encoder`;
    });
    const { id } = await c.submitRun(spec());
    await trainFold(c, id, 0, 0.3);
    assert.equal((await c.getRun(id)).state, RunState.RUN_STATE_RUNNING);
    await trainFold(c, id, 1, 0.2);
    // FinishFold answered with the fold recorded and the export still held.
    const finalizing = await c.getRun(id);
    assert.equal(finalizing.state, RunState.RUN_STATE_FINALIZING);
    assert.deepEqual(
      finalizing.folds.map((f) => f.state),
      [FoldState.FOLD_STATE_SUCCEEDED, FoldState.FOLD_STATE_SUCCEEDED],
    );
    const attempt = await c.startAttempt({ runId: id, fold: 1, worker: 'late', delivery: 2 });
    assert.equal(attempt.proceed, false);
    assert.match(attempt.reason, /FINALIZING/);
    const events: RunEvent[] = [];
    const watching = c.watchRun(id, (e) => events.push(e), new AbortController().signal);
    release();
    await c.idle();
    await watching;
    const done = await c.getRun(id);
    assert.equal(done.state, RunState.RUN_STATE_SUCCEEDED, done.error);
    assert.equal(done.error, '');
    assert.equal(done.summary?.bestFold, 1);
    assert.equal(done.summary?.encoder, `runs/${id}/encoder`);
    assert.ok(Math.abs((done.summary?.valLoss?.mean ?? 0) - 0.25) < 1e-9);
    assert.equal((await summaryJson(w, id)).state, RunState.RUN_STATE_SUCCEEDED);
    // The watch goes on through FINALIZING and ends with the final state.
    const states = events.map((e) => e.run?.state);
    assert.equal(states.at(-1), RunState.RUN_STATE_SUCCEEDED);
    assert.ok(states.length >= 2 && states.slice(0, -1).every((st) => st === RunState.RUN_STATE_FINALIZING), `watched states ${states.join(', ')}`);
  },
);

test('the default exporter: a best fold without a best checkpoint ends the run FAILED with the reason (no retry)', T, async () => {
  const w = await world();
  const c = new Coordinator({ store: w.store, queue: w.queue, runs: w.runs, finalizeRetry: { initialMs: 1, maxMs: 4 } });
  const { id } = await c.submitRun(spec());
  await trainFold(c, id, 0, 0.3, { best: false });
  await trainFold(c, id, 1, 0.4);
  await c.idle();
  const done = await c.getRun(id);
  assert.equal(done.state, RunState.RUN_STATE_FAILED);
  assert.match(done.error, /encoder export or report failed: run .* the best fold uploaded no best checkpoint/);
  assert.equal(done.summary?.bestFold, 0);
  assert.equal(done.summary?.encoder, '');
  assert.equal((await summaryJson(w, id)).error, done.error);
});

test('a transient failure during finalisation is retried until it succeeds; a permanent one is not', T, async () => {
  const w = await world();
  let calls = 0;
  const c = w.coordinator(async ({ run, store }) => {
    calls += 1;
    if (calls <= 2) throw new StorageError('S3_ERROR', 'put failed: connect ECONNREFUSED', `runs/${run.id}/encoder/model.json`);
    await store.put(`runs/${run.id}/encoder/model.json`, enc('{}'));
    return `runs/${run.id}/encoder`;
  });
  const { id } = await c.submitRun(spec());
  await trainFold(c, id, 0, 0.3);
  await trainFold(c, id, 1, 0.4);
  await c.idle();
  assert.equal(calls, 3);
  assert.equal((await c.getRun(id)).state, RunState.RUN_STATE_SUCCEEDED);

  // The summary write itself failing (S3 down) is retried too.
  const w2 = await world();
  let exports = 0;
  const c2 = w2.coordinator(({ run }) => Promise.resolve((exports++, `runs/${run.id}/encoder`)));
  const r2 = await c2.submitRun(spec());
  await trainFold(c2, r2.id, 0, 0.3);
  const a = await start(c2, r2.id, 1);
  await upload(c2, a, CheckpointKind.CHECKPOINT_KIND_BEST, 1);
  w2.store.failNext('put', undefined, 2);
  await c2.finishFold({ attempt: a, bestEpoch: 1, val: evalOf(0.5), train: evalOf(0.5), test: evalOf(0.5) });
  await c2.idle();
  assert.equal((await c2.getRun(r2.id)).state, RunState.RUN_STATE_SUCCEEDED);
  assert.equal(exports, 3);
  assert.ok(w2.store.object(`runs/${r2.id}/summary.json`));

  let permanent = 0;
  const w3 = await world();
  const c3 = w3.coordinator(() => {
    permanent += 1;
    return Promise.reject(new FinalizeError('NO_TEST_SHARD', 'dataset version v1 has no test shard'));
  });
  const r3 = await c3.submitRun(spec());
  await trainFold(c3, r3.id, 0, 0.3);
  await trainFold(c3, r3.id, 1, 0.4);
  await c3.idle();
  assert.equal(permanent, 1);
  assert.match((await c3.getRun(r3.id)).error, /no test shard/);
});

test('a coordinator that dies inside the export: a new one over the same stores finishes the run on recover()', T, async () => {
  const w = await world();
  let entered!: () => void;
  const inExport = new Promise<void>((r) => (entered = r));
  // The first coordinator's export never returns (it is "killed" inside it).
  const dying = w.coordinator(({ signal }) => {
    entered();
    return new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('killed')), { once: true }));
  });
  const { id } = await dying.submitRun(spec());
  await trainFold(dying, id, 0, 0.3);
  await trainFold(dying, id, 1, 0.2);
  await inExport;
  assert.equal((await dying.getRun(id)).state, RunState.RUN_STATE_FINALIZING);

  const restarted = w.coordinator();
  assert.deepEqual(await restarted.recover(), { finalizing: [id], cancelling: [], requeued: [] });
  await restarted.idle();
  await dying.close();
  const done = await restarted.getRun(id);
  assert.equal(done.state, RunState.RUN_STATE_SUCCEEDED, done.error);
  assert.equal(done.summary?.bestFold, 1);
  assert.deepEqual(w.exported, [id]);
  assert.deepEqual(
    w.store.keys().filter((k) => k.startsWith(`runs/${id}/encoder/`) || k.startsWith(`runs/${id}/report/`) || k.endsWith('summary.json')),
    [
      `runs/${id}/encoder/model.json`,
      `runs/${id}/encoder/weights.bin`,
      `runs/${id}/report/loss-curves.png`,
      `runs/${id}/report/originals.png`,
      `runs/${id}/report/reconstructions.png`,
      `runs/${id}/summary.json`,
    ],
  );
  assert.equal((await summaryJson(w, id)).state, RunState.RUN_STATE_SUCCEEDED, 'the killed export wrote nothing after it was stopped');
  // Workers of the finished run are told so; their old tokens are stale.
  assert.equal((await restarted.startAttempt({ runId: id, fold: 0, worker: 'w', delivery: 2 })).proceed, false);
});

test('finalize() is idempotent: a retry after a failed final write writes the same summary, and once ended it does nothing', T, async () => {
  const w = await world();
  const first = w.coordinator(({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('killed')), { once: true })));
  const { id } = await first.submitRun(spec());
  await trainFold(first, id, 0, 0.3);
  await trainFold(first, id, 1, 0.2);
  await first.close();
  assert.equal((await first.getRun(id)).state, RunState.RUN_STATE_FINALIZING);

  const c = w.coordinator();
  w.runs.failNext('update', new Error('KV write lost'));
  await assert.rejects(c.finalize(id), /KV write lost/);
  const once = w.store.object(`runs/${id}/summary.json`)?.bytes;
  assert.ok(once, 'the summary was written before the final state');
  assert.equal((await c.getRun(id)).state, RunState.RUN_STATE_FINALIZING);
  const done = await c.finalize(id);
  assert.equal(done.state, RunState.RUN_STATE_SUCCEEDED);
  assert.deepEqual(w.store.object(`runs/${id}/summary.json`)?.bytes, once, 'the same summary both times');
  const puts = w.store.puts;
  assert.equal((await c.finalize(id)).state, RunState.RUN_STATE_SUCCEEDED);
  assert.deepEqual(await c.recover(), { finalizing: [], cancelling: [], requeued: [] });
  await c.idle();
  assert.equal(w.store.puts, puts, 'an ended run is not finalised again');
  assert.deepEqual(w.exported, [id, id]);
});

test('recover({ requeue }) on start publishes the never-started folds of a submission cut short before its tasks were all queued', T, async () => {
  const w = await world();
  const c = w.coordinator();
  const { id } = await c.submitRun(spec());
  const a = await start(c, id, 0);
  assert.ok(a.token);
  // As a coordinator that died between recording the run and publishing its tasks leaves it: fold 1's task never made it.
  const lost = createMemoryTaskQueue({ maxDeliver: 3 });
  const restarted = new Coordinator({ store: w.store, queue: lost, runs: w.runs, finalizeRetry: { initialMs: 1, maxMs: 4 } });
  assert.deepEqual(
    await restarted.recover({ requeue: true }),
    { finalizing: [], cancelling: [], requeued: [`${id}.1`] },
    'the started fold 0 is not queued again',
  );
  assert.deepEqual((await lost.next(1))?.task, { runId: id, fold: 1 });
  // Published once: a second start finds it deduplicated, and the periodic sweep (no requeue) never publishes.
  assert.deepEqual((await restarted.recover({ requeue: true })).requeued, []);
  assert.deepEqual((await restarted.recover()).requeued, []);
});

test('recover() finalises a run the old code left RUNNING with every fold ended, and leaves running runs alone', T, async () => {
  const w = await world();
  const c = w.coordinator();
  const { id } = await c.submitRun(spec());
  const other = await c.submitRun(spec({ name: 'busy' }));
  await start(c, other.id, 0);
  await trainFold(c, id, 0, 0.3);
  // As the old code left it: both folds ended, the run still RUNNING (its finalisation died with the coordinator).
  const doc = (await w.runs.get(runKey(id)))?.value;
  assert.ok(doc);
  w.runs.put(runKey(id), {
    ...doc,
    run: {
      ...doc.run,
      state: RunState.RUN_STATE_RUNNING,
      folds: doc.run.folds.map((f) => (f.fold === 1 ? { ...f, state: FoldState.FOLD_STATE_FAILED, error: 'boom' } : f)),
    },
  });
  const restarted = w.coordinator();
  assert.deepEqual(await restarted.recover(), { finalizing: [id], cancelling: [], requeued: [] });
  await restarted.idle();
  const done = await restarted.getRun(id);
  assert.equal(done.state, RunState.RUN_STATE_FAILED);
  assert.match(done.error, /fold 1: boom/);
  assert.equal(done.summary?.bestFold, 0);
  assert.equal((await restarted.getRun(other.id)).state, RunState.RUN_STATE_RUNNING);
});

test('cancel: unfinished folds CANCELLED, workers told CANCELLED, finished folds and their checkpoints kept, summary.json records it', T, async () => {
  const w = await world();
  const c = w.coordinator();
  const { id } = await c.submitRun(spec());
  await trainFold(c, id, 0, 0.3);
  const running = await start(c, id, 1);
  await c.reportProgress(running, { epoch: 1, epochs: 1, images: 5, totalImages: 10, imagesPerSec: 1, loss: 1, etaSeconds: 5, updatedAtMs: 0 });
  const run = await c.cancelRun(id);
  assert.equal(run.state, RunState.RUN_STATE_CANCELLED);
  assert.deepEqual(
    run.folds.map((f) => f.state),
    [FoldState.FOLD_STATE_SUCCEEDED, FoldState.FOLD_STATE_CANCELLED],
  );
  assert.equal(run.folds[1]?.progress, undefined);
  assert.equal(run.summary?.bestFold, 0);
  assert.equal(run.summary?.encoder, '', 'a cancel exports no encoder');
  assert.deepEqual((await w.runs.get(runKey(id)))?.value.tokens, ['', '']);
  await assert.rejects(c.reportEpoch(running, epoch(1)), outcome('CANCELLED'));
  await assert.rejects(c.finishFold({ attempt: running, bestEpoch: 1 }), outcome('CANCELLED'));
  assert.equal((await c.startAttempt({ runId: id, fold: 1, worker: 'w', delivery: 2 })).proceed, false);
  const saved = await summaryJson(w, id);
  assert.equal(saved.state, RunState.RUN_STATE_CANCELLED);
  assert.deepEqual(
    saved.folds.map((f) => f.state),
    [FoldState.FOLD_STATE_SUCCEEDED, FoldState.FOLD_STATE_CANCELLED],
  );
  assert.ok(w.store.object(`runs/${id}/fold-0/best/attempt-1.ckpt`), 'the finished fold keeps its checkpoint');
  assert.equal((await c.openBestCheckpoint(id, 0)).key, `runs/${id}/fold-0/best/attempt-1.ckpt`);
  assert.equal((await c.cancelRun(id)).state, RunState.RUN_STATE_CANCELLED, 'a second cancel changes nothing');
  await c.idle();
  assert.deepEqual(w.exported, []);
});

test('a cancel arriving while an attempt is being started wins: the attempt is refused', T, async () => {
  const w = await world();
  const c = w.coordinator();
  const { id } = await c.submitRun(spec());
  w.runs.conflictOnce(runKey(id), (d) => ({
    ...d,
    run: { ...d.run, state: RunState.RUN_STATE_CANCELLING, folds: d.run.folds.map((f) => ({ ...f, state: FoldState.FOLD_STATE_CANCELLED })) },
  }));
  const s = await c.startAttempt({ runId: id, fold: 0, worker: 'w', delivery: 1 });
  assert.equal(s.proceed, false);
  assert.match(s.reason, /CANCELLING/);
  assert.equal((await c.getRun(id)).state, RunState.RUN_STATE_CANCELLING);
});

test('an interrupted cancel (clean-up failed, coordinator gone) is completed by recover()', T, async () => {
  const w = await world();
  const c = w.coordinator();
  const { id } = await c.submitRun(spec());
  await start(c, id, 0);
  w.store.failNext('put', undefined, 2); // the inline clean-up and the first background try
  const run = await c.cancelRun(id);
  assert.equal(run.state, RunState.RUN_STATE_CANCELLING);
  await c.close();
  assert.equal((await c.getRun(id)).state, RunState.RUN_STATE_CANCELLING);
  assert.equal(w.store.object(`runs/${id}/summary.json`), undefined);

  const restarted = w.coordinator();
  assert.deepEqual(await restarted.recover(), { finalizing: [], cancelling: [id], requeued: [] });
  await restarted.idle();
  const done = await restarted.getRun(id);
  assert.equal(done.state, RunState.RUN_STATE_CANCELLED);
  assert.deepEqual(
    done.folds.map((f) => f.state),
    [FoldState.FOLD_STATE_CANCELLED, FoldState.FOLD_STATE_CANCELLED],
  );
  assert.equal((await summaryJson(w, id)).state, RunState.RUN_STATE_CANCELLED);
});

test('a task given up after max_deliver fails its fold with the reason; the run is finalised FAILED with the other fold summarised', T, async () => {
  const w = await world({ maxDeliver: 2 });
  const c = w.coordinator();
  w.queue.onGivenUp((t, n) => c.onTaskGivenUp(t, n));
  const { id } = await c.submitRun(spec());
  const d0 = await w.queue.next(1);
  const d1 = await w.queue.next(1);
  assert.deepEqual([d0?.task.fold, d1?.task.fold], [0, 1]);
  await trainFold(c, id, 0, 0.3);
  await d0?.ack();
  // Fold 1's worker dies twice: each delivery starts an attempt, then its ack wait runs out.
  await start(c, id, 1, d1?.delivery);
  w.queue.expireInFlight();
  const again = await w.queue.next(1);
  assert.equal(again?.delivery, 2);
  await start(c, id, 1, again?.delivery);
  w.queue.expireInFlight();
  assert.equal(await w.queue.next(1), undefined, 'no third delivery');
  await w.queue.settled();
  await c.idle();
  const done = await c.getRun(id);
  assert.equal(done.folds[1]?.state, FoldState.FOLD_STATE_FAILED);
  assert.equal(done.folds[1]?.attempts, 2);
  assert.match(done.folds[1]?.error ?? '', /gave up after 2 deliveries/);
  assert.equal(done.state, RunState.RUN_STATE_FAILED);
  assert.match(done.error, /fold 1: gave up after 2 deliveries/);
  assert.equal(done.summary?.bestFold, 0);
  assert.deepEqual(w.exported, [id]);
  // A second advisory for the same task changes nothing.
  await c.onTaskGivenUp({ runId: id, fold: 1 }, 2);
  assert.equal((await c.getRun(id)).updatedAtMs, done.updatedAtMs);
});

test('a fold error of any length is kept to MAX_ERROR_CHARS (the run document is one NATS message)', T, async () => {
  const w = await world();
  const c = w.coordinator();
  const { id } = await c.submitRun(spec());
  const a = await start(c, id, 0);
  await c.failFold({ attempt: a, error: `bad file: ${'x'.repeat(100_000)}`, final: false });
  const f = (await c.getRun(id)).folds[0];
  assert.equal(f?.error.length, MAX_ERROR_CHARS);
  assert.ok(f?.error.startsWith('bad file: xxx') && f.error.endsWith('…'), f?.error.slice(-20));
});

test('a final failFold of the last fold finalises the run FAILED; a run whose folds all failed has no summary', T, async () => {
  const w = await world();
  const c = w.coordinator();
  const { id } = await c.submitRun(spec());
  for (const fold of [0, 1]) {
    const a = await start(c, id, fold);
    await c.failFold({ attempt: a, error: `fold ${fold} diverged`, final: true });
  }
  await c.idle();
  const done = await c.getRun(id);
  assert.equal(done.state, RunState.RUN_STATE_FAILED);
  assert.equal(done.error, 'fold 0: fold 0 diverged; fold 1: fold 1 diverged');
  assert.equal(done.summary, undefined);
  assert.deepEqual(w.exported, []);
  assert.equal((await summaryJson(w, id)).state, RunState.RUN_STATE_FAILED);
});

/** A coordinator over `w`'s stores with a clock that moves only when the test says (`advance`), pausing every fold at epoch 1 (a sweep's rung). */
function pausingAtEpoch1(w: World, o: { checkpointGraceMs?: number } = {}) {
  let clock = Date.UTC(2026, 0, 2, 3, 4, 5);
  const c = new Coordinator({
    store: w.store,
    queue: w.queue,
    runs: w.runs,
    now: () => clock,
    exportArtifacts: () => Promise.resolve(''),
    ...(o.checkpointGraceMs !== undefined ? { checkpointGraceMs: o.checkpointGraceMs } : {}),
  });
  c.attachHooks({ pauseAt: (_run, e) => e === 1, runChanged: () => {} });
  return { c, advance: (ms: number) => (clock += ms) };
}

/** The resume tasks published for `fold`, in stream order, as `rRUNG.aATTEMPTS`. */
const resumes = (w: World, fold: number): string[] =>
  w.queue
    .records()
    .filter((r) => r.task.fold === fold && r.task.resumeAt !== undefined)
    .map((r) => `r${r.task.resumeAt}.a${r.task.attempts ?? '-'}`);

test("resumePaused holds a released fold until its pausing attempt's rung checkpoint lands; the new attempt resumes from it", T, async () => {
  const w = await world();
  const { c } = pausingAtEpoch1(w);
  const { id } = await c.submitRun(spec({ epochs: 3 }));
  const a0 = await start(c, id, 0);
  assert.equal((await c.reportEpoch(a0, epoch(1))).stop, true);
  await upload(c, a0, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1);
  // Fold 1's report is the last one the rung waited for: the run is judged while its attempt is still uploading.
  const a1 = await start(c, id, 1);
  assert.equal((await c.reportEpoch(a1, epoch(1))).stop, true);
  assert.deepEqual(await c.resumePaused(id, 1), [0], 'fold 1 waits for its checkpoint');
  assert.deepEqual(resumes(w, 1), []);
  assert.deepEqual((await w.runs.get(runKey(id)))?.value.released, [1, 1], 'fold 1 is still owed its resume');
  // The pausing attempt's upload is accepted (no new attempt took the token), and the next call queues the fold.
  const key = await upload(c, a1, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1);
  assert.deepEqual(await c.resumePaused(id, 1), [1]);
  assert.deepEqual(resumes(w, 1), ['r1.a1']);
  const next = await c.startAttempt({ runId: id, fold: 1, worker: 'w2', delivery: 1 });
  assert.ok(next.proceed, next.reason);
  assert.equal(next.resumeCheckpoint, key, 'resumes from the rung, not from scratch');
});

test('a released fold whose pausing attempt died before its upload is queued once the grace after the pause has passed', T, async () => {
  const w = await world();
  const { c, advance } = pausingAtEpoch1(w, { checkpointGraceMs: 120_000 });
  const { id } = await c.submitRun(spec({ epochs: 3 }));
  const a0 = await start(c, id, 0);
  await c.reportEpoch(a0, epoch(1));
  await upload(c, a0, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1);
  const a1 = await start(c, id, 1);
  await c.reportEpoch(a1, epoch(1));
  advance(60_000);
  assert.deepEqual(await c.resumePaused(id, 1), [0]);
  advance(60_000);
  // Its worker is gone: the fold goes on from what it has (no checkpoint: from scratch).
  assert.deepEqual(await c.resumePaused(id, 1), [1]);
  const next = await c.startAttempt({ runId: id, fold: 1, worker: 'w2', delivery: 1 });
  assert.ok(next.proceed, next.reason);
  assert.equal(next.resumeCheckpoint, '');
  // Or its own task comes back first (un-acknowledged when its worker died): the redelivery takes the released fold, and
  // no resume task is published for it any more.
  const b = await c.submitRun(spec({ epochs: 3 }));
  const b0 = await start(c, b.id, 0);
  await c.reportEpoch(b0, epoch(1));
  await upload(c, b0, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1);
  const b1 = await start(c, b.id, 1);
  await c.reportEpoch(b1, epoch(1));
  assert.deepEqual(await c.resumePaused(b.id, 1), [0]);
  const redelivered = await c.startAttempt({ runId: b.id, fold: 1, worker: 'w3', delivery: 2 });
  assert.ok(redelivered.proceed, redelivered.reason);
  assert.deepEqual(await c.resumePaused(b.id, 1), []);
  assert.deepEqual(
    w.queue
      .records()
      .filter((r) => r.task.runId === b.id && r.task.fold === 1)
      .map((r) => r.task.resumeAt ?? 0),
    [0],
    'fold 1 of the second run has only its first task',
  );
});

test('a fold paused a second time at the same rung (a retried attempt reported it again) gets a second resume task; a repeated call none', T, async () => {
  const w = await world();
  const { c } = pausingAtEpoch1(w);
  const { id } = await c.submitRun(spec({ epochs: 3 }));
  const first = await start(c, id, 0);
  await c.reportEpoch(first, epoch(1));
  await upload(c, first, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1);
  assert.deepEqual(await c.resumePaused(id, 1), [0]);
  assert.deepEqual(await c.resumePaused(id, 1), [], 'the same resume again is deduplicated');
  // The resumed attempt reports epoch 1 again (say it resumed from an older checkpoint) and is paused there again.
  const second = await start(c, id, 0);
  assert.equal((await c.reportEpoch(second, epoch(1))).stop, true);
  assert.deepEqual(await c.resumePaused(id, 1), [0], 'not swallowed as a duplicate of the first resume');
  assert.deepEqual(resumes(w, 0), ['r1.a1', 'r1.a2']);
  assert.deepEqual(await c.resumePaused(id, 1), []);
  assert.ok((await c.startAttempt({ runId: id, fold: 0, worker: 'w3', delivery: 1 })).proceed);
});

test(
  'a second task for a fold whose attempt reports progress is refused as a duplicate; a redelivery of its own task, or a task once it went quiet, starts',
  T,
  async () => {
    const w = await world();
    const { c, advance } = pausingAtEpoch1(w);
    const { id } = await c.submitRun(spec({ epochs: 3 }));
    const a = await start(c, id, 0);
    const progress = { epoch: 1, epochs: 3, images: 5, totalImages: 10, imagesPerSec: 5, loss: 0.5, etaSeconds: 7, updatedAtMs: 0 };
    await c.reportProgress(a, progress);
    advance(20_000);
    const dup = await c.startAttempt({ runId: id, fold: 0, worker: 'w9', delivery: 1 });
    assert.equal(dup.proceed, false);
    assert.match(dup.reason, /fold 0 is being trained by a live attempt \(worker w0, progress 20 s ago\); this task is a duplicate/);
    assert.deepEqual(await c.reportProgress(a, progress), { stop: false, reason: '' }, 'the live attempt keeps its token');
    // Its own task handed back (its worker is stopping: a nak, redelivered at once) takes the fold over however recent the progress.
    const again = await c.startAttempt({ runId: id, fold: 0, worker: 'w8', delivery: 2 });
    assert.ok(again.proceed, again.reason);
    await assert.rejects(c.reportProgress(a, progress), outcome('FAILED_PRECONDITION'));
    const b: AttemptRef = { runId: id, fold: 0, token: again.token, jobId: '' };
    await c.reportProgress(b, progress);
    // An attempt quiet for more than half an ack_wait (60 s) may be dead: a new task takes over.
    advance(31_000);
    const late = await c.startAttempt({ runId: id, fold: 0, worker: 'w7', delivery: 1 });
    assert.ok(late.proceed, late.reason);
  },
);

test(
  'a run whose task publish failed at submit gets its tasks from the next periodic recover(); one older than the duplicate window waits for a start-up recover',
  T,
  async () => {
    const w = await world();
    const c = w.coordinator();
    const enqueue = w.queue.enqueue.bind(w.queue);
    w.queue.enqueue = () => Promise.reject(new Error('nats: timeout'));
    await assert.rejects(c.submitRun(spec()), /nats: timeout/);
    w.queue.enqueue = enqueue;
    const keys = await w.runs.keys();
    assert.equal(keys.length, 1, 'the run was recorded before the publish failed');
    const doc = (await w.runs.get(keys[0] as string))?.value;
    assert.ok(doc && doc.run.state === RunState.RUN_STATE_PENDING);
    // An old never-started run (past the duplicate window): a second publish could give a fold two tasks.
    w.runs.put(runKey('old-1'), { ...doc, run: { ...doc.run, id: 'old-1', createdAtMs: doc.run.createdAtMs - REQUEUE_WINDOW_MS - 1 } });
    const r = await c.recover();
    assert.deepEqual(r.requeued.sort(), [`${doc.run.id}.0`, `${doc.run.id}.1`]);
    assert.deepEqual((await w.queue.next(1))?.task, { runId: doc.run.id, fold: 0 });
    assert.deepEqual((await c.recover()).requeued, [], 'published once');
    assert.deepEqual((await c.recover({ requeue: true })).requeued.sort(), ['old-1.0', 'old-1.1']);
  },
);

test('the reason of a ReportBadCheckpoint is logged capped at MAX_ERROR_CHARS, as the fold keeps it', T, async () => {
  const w = await world();
  const warned: Record<string, unknown>[] = [];
  const logger = { debug() {}, info() {}, error() {}, warn: (_msg: string, fields?: Record<string, unknown>) => void warned.push(fields ?? {}) };
  const c = new Coordinator({ store: w.store, queue: w.queue, runs: w.runs, logger, finalizeRetry: { initialMs: 1, maxMs: 4 } });
  const { id } = await c.submitRun(spec({ epochs: 2 }));
  const a1 = await start(c, id, 0);
  await c.reportEpoch(a1, epoch(1));
  const key = await upload(c, a1, CheckpointKind.CHECKPOINT_KIND_EPOCH, 1);
  const s = await c.startAttempt({ runId: id, fold: 0, worker: 'w1', delivery: 2 });
  await c.reportBadCheckpoint({ attempt: { runId: id, fold: 0, token: s.token, jobId: '' }, checkpoint: key, reason: 'x'.repeat(3_000_000) });
  const logged = warned.find((f) => f['checkpoint'] === key);
  assert.ok(logged);
  assert.ok(String(logged['reason']).length <= MAX_ERROR_CHARS, `logged ${String(logged['reason']).length} characters`);
});

test('a give-up advisory for a run that does not exist (or a malformed id) is handled, not thrown back for retries', T, async () => {
  const w = await world();
  const c = w.coordinator();
  await c.onTaskGivenUp({ runId: 'gone-run', fold: 0 }, 5);
  await c.onTaskGivenUp({ runId: '../bad id', fold: 0 }, 5);
  // A transient failure is still thrown, so the advisory comes back.
  w.runs.failNext('get', new Error('nats: timeout'));
  await assert.rejects(c.onTaskGivenUp({ runId: 'gone-run', fold: 0 }, 5), /nats: timeout/);
});
