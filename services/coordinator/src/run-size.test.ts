// The run document's size bound and the submit-time refusal of a run whose
// history could outgrow one NATS message (in-memory stores, no servers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EpochMetrics, RunSpec } from '@cvc/proto';
import { createDatasetCatalog } from '@cvc/storage';
import { createMemoryDocStore, createMemoryObjectStore, createMemoryTaskQueue } from '@cvc/testkit';
import { Coordinator } from './coordinator.js';
import { CoordinatorError, MAX_ERROR_CHARS } from './errors.js';
import { runKey, type RunDoc } from './run-doc.js';
import { checkRunFits, EPOCH_RECORD_BYTES, runDocBound } from './run-size.js';

const spec = (over: Partial<RunSpec> = {}): RunSpec => RunSpec.fromPartial({ dataset: 'fashion-mnist', model: 'seed-mnist', folds: 2, epochs: 1, ...over });

async function world(maxDocBytes: number) {
  const store = createMemoryObjectStore();
  const queue = createMemoryTaskQueue({ maxDeliver: 3 });
  const runs = createMemoryDocStore<RunDoc>();
  await createDatasetCatalog(store).register('fashion-mnist', {
    version: 'v1',
    folds: 2,
    scheme: 'stratified',
    seed: 42,
    limit: 200,
    manifest: 'datasets/fashion-mnist/v1/manifest.json',
    height: 28,
    width: 28,
    channels: 1,
  });
  return { queue, runs, coordinator: new Coordinator({ store, queue, runs, maxDocBytes }) };
}

test('the bound grows by one worst-case record per fold and epoch', () => {
  const s = spec();
  assert.equal(runDocBound(s, 3, 10) - runDocBound(s, 3, 0), 3 * 10 * EPOCH_RECORD_BYTES);
  assert.ok(EPOCH_RECORD_BYTES > 150 && EPOCH_RECORD_BYTES < 400, `${EPOCH_RECORD_BYTES} bytes per record`);
});

test('checkRunFits refuses one epoch past what it says fits, naming folds, epochs, sizes and the limit', () => {
  const s = spec();
  const max = 256 * 1024;
  let message = '';
  try {
    checkRunFits(s, 5, 100_000, max);
  } catch (err) {
    assert.ok(err instanceof CoordinatorError && err.outcome === 'INVALID_ARGUMENT');
    message = err.message;
  }
  const m = /use at most (\d+) epochs with 5 folds/.exec(message);
  assert.ok(m, message);
  assert.match(message, /^a run of 5 folds x 100000 epochs keeps 500000 epoch records in its run document \(up to \d+ bytes\), over the 261888 bytes/);
  assert.match(message, /max_payload of 262144 bytes/);
  const fit = Number(m[1]);
  assert.ok(fit > 50, `${fit} epochs fit`);
  checkRunFits(s, 5, fit, max);
  assert.throws(() => checkRunFits(s, 5, fit + 1, max), /use at most/);
});

test('a run document the coordinator really writes stays under the bound: full history, long errors, checkpoints', async () => {
  const w = await world(64 * 1024 * 1024);
  const epochs = 40;
  const run = await w.coordinator.submitRun(spec({ epochs }));
  for (const fold of [0, 1]) {
    const s = await w.coordinator.startAttempt({ runId: run.id, fold, worker: 'w'.repeat(200), delivery: 1 });
    assert.ok(s.proceed, s.reason);
    const a = { runId: run.id, fold, token: s.token, jobId: '' };
    for (let e = 1; e <= epochs; e++) {
      // Negative where a report may be (one character longer), positive where it must be >= 0.
      const x = -Math.PI * 1e-300 * e;
      await w.coordinator.reportEpoch(a, EpochMetrics.fromPartial({ epoch: e, loss: x, valLoss: x, valMse: -x, valCosine: x, seconds: -x, imagesPerSec: -x }));
    }
    await w.coordinator.failFold({ attempt: a, error: '\u20ac'.repeat(MAX_ERROR_CHARS * 3), final: true });
  }
  const doc = (await w.runs.get(runKey(run.id)))?.value;
  assert.ok(doc);
  assert.equal(doc.run.folds[0]?.history.length, epochs);
  const bytes = new TextEncoder().encode(JSON.stringify(doc)).length;
  const bound = runDocBound(spec({ epochs, datasetVersion: 'v1' }), 2, epochs);
  assert.ok(bytes <= bound, `${bytes} bytes written, bound ${bound}`);
  // The bound is not wildly loose either: within a factor of two of the worst real document.
  assert.ok(bound < 2 * bytes, `${bytes} bytes written, bound ${bound}`);
});

test('submit refuses a run whose history could outgrow one NATS message before recording or queueing anything; a run that fits is taken', async () => {
  const w = await world(64 * 1024);
  await assert.rejects(
    () => w.coordinator.submitRun(spec({ epochs: 1000 })),
    (err: unknown) =>
      err instanceof CoordinatorError &&
      err.outcome === 'INVALID_ARGUMENT' &&
      /a run of 2 folds x 1000 epochs .* max_payload of 65536 bytes .*: use at most \d+ epochs with 2 folds/.test(err.message),
  );
  assert.deepEqual(await w.runs.keys(), []);
  assert.deepEqual(await w.queue.depth(), { pending: 0, inFlight: 0 });
  // The same check answers a dry run (sweeps check their trials' specs with it).
  await assert.rejects(() => w.coordinator.checkRunSpec(spec({ epochs: 1000 })), /use at most/);
  const ok = await w.coordinator.submitRun(spec({ epochs: 20 }));
  assert.equal(ok.folds.length, 2);
  assert.deepEqual(await w.queue.depth(), { pending: 2, inFlight: 0 });
});
