import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CancelledError, ConfigError } from '@cvc/core';
import { randomImageSet } from '@cvc/data/testing';
import { initBackend, tf } from '@cvc/tfjs-runtime';
import { FoldTrainer, ModelError, decodeCheckpoint, encodeCheckpoint, runFold } from './index.js';

await initBackend('wasm');
const train = randomImageSet(40, 28, 28, 1, 11);
const val = randomImageSet(16, 28, 28, 1, 12);
const test_ = randomImageSet(16, 28, 28, 1, 13);
const cfg = { model: 'seed-mnist' as const, epochs: 2, batchSize: 16, learningRate: 1e-3, seed: 3 };

function maxDiff(a: { values: Float32Array | Int32Array }[], b: { values: Float32Array | Int32Array }[]): number {
  let m = 0;
  a.forEach((x, i) => x.values.forEach((v, j) => (m = Math.max(m, Math.abs(v - ((b[i]?.values[j] as number) ?? NaN))))));
  return m;
}

test('2 epochs straight equal 1 epoch + checkpoint/restore + 1 epoch', async () => {
  const straight = FoldTrainer.create(cfg);
  await straight.fit({ train, val });
  const a = straight.getWeights();

  const one = FoldTrainer.create({ ...cfg, epochs: 1 });
  await one.fit({ train, val });
  const bytes = await one.checkpoint();
  one.dispose();
  const state = decodeCheckpoint(bytes);
  assert.equal(state.epochsDone, 1);
  assert.ok(state.optimizer.length > 0, 'optimizer state is saved');
  // As read from disk: a Node Buffer, whose slice() shares memory.
  const resumed = await FoldTrainer.resume(Buffer.from(bytes), 'one.ckpt', { epochs: 2 });
  await resumed.fit({ train, val });
  assert.equal(resumed.epochsDone, 2);
  const b = resumed.getWeights();
  assert.equal(a.length, b.length);
  assert.ok(
    a.some((w) => w.name.includes('moving_mean')),
    'batch-norm statistics are part of the weights',
  );
  const d = maxDiff(a, b);
  assert.ok(d < 1e-5, `weights differ by ${d}`);
  // A trainer that skipped the restore of Adam's state would differ: make sure the test can tell.
  const noOpt = await FoldTrainer.resume(encodeCheckpoint({ ...state, optimizer: [] }), 'no-opt.ckpt', { epochs: 2 });
  await noOpt.fit({ train, val });
  assert.ok(maxDiff(a, noOpt.getWeights()) > 1e-4, 'resuming without optimizer state gives other weights');
  for (const t of [straight, resumed, noOpt]) t.dispose();
});

test('tensor count stays flat across epochs', async () => {
  const t = FoldTrainer.create({ ...cfg, epochs: 3 });
  const counts: number[] = [];
  await t.fit({ train, val }, { onEpochEnd: () => void counts.push(tf.memory().numTensors) });
  assert.equal(counts.length, 3);
  assert.equal(counts[1], counts[0]);
  assert.equal(counts[2], counts[0]);
  t.dispose();
});

test("a checkpoint carries Adam's running powers and a resume restores them exactly (not pow(beta, t + 1))", async () => {
  const t = FoldTrainer.create({ ...cfg, epochs: 1 });
  await t.fit({ train, val });
  const state = decodeCheckpoint(await t.checkpoint());
  const saved = state.optimizer.filter((a) => a.name.startsWith('adam/power-'));
  assert.deepEqual(
    saved.map((a) => a.name),
    ['adam/power-accBeta1', 'adam/power-accBeta2'],
  );
  // Nudge the saved products so that a recomputation would be told apart from a restore.
  const nudged = state.optimizer.map((a) => (a.name.startsWith('adam/power-') ? { ...a, values: Float32Array.of((a.values[0] as number) * 0.5) } : a));
  const resumed = await FoldTrainer.resume(encodeCheckpoint({ ...state, optimizer: nudged }), 'powers.ckpt', { epochs: 2 });
  const again = decodeCheckpoint(await resumed.checkpoint()).optimizer.filter((a) => a.name.startsWith('adam/power-'));
  assert.deepEqual(
    again.map((a) => a.values[0]),
    nudged.filter((a) => a.name.startsWith('adam/power-')).map((a) => a.values[0]),
  );
  resumed.dispose();
  t.dispose();
});

test('checkpoint, setWeights and resume leave no tensor behind', async () => {
  const t = FoldTrainer.create({ ...cfg, epochs: 1 });
  await t.fit({ train, val });
  const before = tf.memory().numTensors;
  const bytes = await t.checkpoint();
  await t.checkpoint();
  t.setWeights(t.getWeights());
  assert.equal(tf.memory().numTensors, before, 'checkpoint() and setWeights() release their temporary tensors');
  const resumed = await FoldTrainer.resume(bytes, 'leak.ckpt');
  const withResumed = tf.memory().numTensors;
  resumed.dispose();
  const again = await FoldTrainer.resume(bytes, 'leak.ckpt');
  assert.equal(tf.memory().numTensors, withResumed, 'a second resume holds as many tensors as the first');
  again.dispose();
  t.dispose();
});

test('runFold keeps the best validation weights and evaluates them on every split', async () => {
  const t = FoldTrainer.create({ ...cfg, epochs: 3 });
  const r = await runFold(t, { train, val, test: test_ });
  assert.equal(r.history.length, 3);
  const best = r.history.reduce((b, e) => (e.valLoss < b.valLoss ? e : b));
  assert.equal(r.bestEpoch, best.epoch);
  assert.ok(Math.abs(r.metrics.val.loss - best.valLoss) < 1e-6, 'restored weights reproduce the best validation loss');
  assert.equal(r.metrics.test.count, 16);
  assert.equal(decodeCheckpoint(r.bestCheckpoint).best?.epoch, best.epoch);
  t.dispose();
});

test('bad configs, data and checkpoints are refused clearly', async () => {
  assert.throws(
    () => FoldTrainer.create({ ...cfg, epochs: 0 }),
    (e: unknown) => e instanceof ConfigError && e.field === 'epochs',
  );
  assert.throws(
    () => FoldTrainer.create({ ...cfg, model: 'resnet' as never }),
    (e: unknown) => e instanceof ConfigError && e.field === 'model',
  );
  const t = FoldTrainer.create(cfg);
  await assert.rejects(
    t.fit({ train: randomImageSet(8, 32, 32, 3), val }),
    (e: unknown) => e instanceof ModelError && /takes 28x28x1 images, the training images are 32x32x3/.test(e.message),
  );
  const bytes = await t.checkpoint();
  const bad = bytes.slice();
  bad[bad.length - 100] = (bad[bad.length - 100] as number) ^ 1;
  await assert.rejects(
    FoldTrainer.resume(bad, 'fold-0/last.ckpt'),
    (e: unknown) => e instanceof ModelError && e.code === 'CHECKPOINT_CHECKSUM' && /fold-0\/last\.ckpt/.test(e.message),
  );
  await assert.rejects(FoldTrainer.resume(bytes.subarray(0, 20)), (e: unknown) => e instanceof ModelError);
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(t.fit({ train, val }, { signal: ac.signal }), /cancelled/);
  t.dispose();
});

test('debiased batch-norm statistics are used for evaluation only, and can be turned off', async () => {
  const t = FoldTrainer.create({ ...cfg, epochs: 1 });
  await t.fit({ train, val });
  const before = t.getWeights();
  const debiased = await t.evaluate(val);
  assert.ok(maxDiff(before, t.getWeights()) === 0, 'evaluation leaves the stored moving statistics as they were');
  const raw = await FoldTrainer.resume(encodeCheckpoint({ ...decodeCheckpoint(await t.checkpoint()), config: { ...t.config, bnDebias: false } }));
  const plain = await raw.evaluate(val);
  assert.ok(Math.abs(plain.loss - debiased.loss) > 1e-4, `debiasing changes an early evaluation (${plain.loss} vs ${debiased.loss})`);
  t.dispose();
  raw.dispose();
});

test('the exported encoder loads with plain tf.loadLayersModel and gives the trained codes', async () => {
  const { createServer } = await import('node:http');
  const t = FoldTrainer.create({ ...cfg, epochs: 1 });
  await t.fit({ train, val });
  const { modelJson, weights } = await t.exportEncoder();
  const server = createServer((req, res) => {
    if (req.url === '/enc/model.json') res.end(modelJson);
    else if (req.url === '/enc/weights.bin') res.end(weights);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    const loaded = await tf.loadLayersModel(`http://127.0.0.1:${port}/enc/model.json`);
    const x = tf.tensor4d(
      Float32Array.from(val.images.subarray(0, 4 * 784), (v) => v / 255),
      [4, 28, 28, 1],
    );
    const got = loaded.predict(x) as tf.Tensor;
    const want = t.withInferenceStats(() => t.net.encoder.predict(x) as tf.Tensor);
    assert.deepEqual(got.shape, [4, 10]);
    const d = tf.max(tf.abs(tf.sub(got, want))).dataSync()[0] as number;
    assert.ok(d < 1e-5, `codes differ by ${d}`);
    loaded.dispose();
  } finally {
    server.close();
    t.dispose();
  }
});

test("training and evaluation give the event loop a turn after every batch (a worker's task heartbeat keeps running)", async () => {
  // A counter that needs one event-loop turn per increment: it only advances when the trainer yields.
  let turns = 0;
  let running = true;
  const tick = (): void => {
    turns++;
    if (running) setImmediate(tick);
  };
  const t = FoldTrainer.create({ ...cfg, epochs: 1, evalBatchSize: 4 });
  try {
    setImmediate(tick);
    turns = 0;
    await t.evaluate(val); // 16 images in batches of 4
    assert.ok(turns >= 3, `evaluation yielded ${turns} times over 4 batches`);
    turns = 0;
    await t.fit({ train, val }); // 40 images in batches of 16, then 4 validation batches
    assert.ok(turns >= 2 + 3, `an epoch yielded ${turns} times over 3 training and 4 validation batches`);
  } finally {
    running = false;
    t.dispose();
  }
});

test('an evaluation ends at the batch after its signal aborts (CancelledError): a worker told to stop does not finish it', async () => {
  const t = FoldTrainer.create({ ...cfg, epochs: 1, evalBatchSize: 4 });
  try {
    const ac = new AbortController();
    // Aborted while the first batch runs (16 images in batches of 4).
    setImmediate(() => ac.abort(new Error('worker stopping')));
    await assert.rejects(t.evaluate(val, { signal: ac.signal }), (e: unknown) => e instanceof CancelledError && /evaluating 16 images/.test(e.message));
    const m = await t.evaluate(val);
    assert.equal(m.count, 16, 'the trainer is still usable');
  } finally {
    t.dispose();
  }
});

test("a checkpoint whose Adam state does not fit the model's variables is CHECKPOINT_MISMATCH naming the slot, and leaves no tensor behind", async () => {
  const t = FoldTrainer.create({ ...cfg, epochs: 1 });
  await t.fit({ train: randomImageSet(16, 28, 28, 1, 4), val });
  const state = decodeCheckpoint(await t.checkpoint());
  t.dispose();
  // The iteration count, then a first and a second moment per variable; the two powers at the end.
  const slots = state.optimizer.filter((a) => !a.name.startsWith('adam/power-'));
  const powers = state.optimizer.filter((a) => a.name.startsWith('adam/power-'));
  const before = tf.memory().numTensors;
  const mismatch = (text: RegExp) => (e: unknown) => e instanceof ModelError && e.code === 'CHECKPOINT_MISMATCH' && text.test(e.message);
  // A moment missing: Adam would pair every later moment with the wrong variable.
  const short = encodeCheckpoint({ ...state, optimizer: [...slots.slice(0, -1), ...powers] });
  await assert.rejects(FoldTrainer.resume(short, 'short.ckpt'), mismatch(/short\.ckpt: the optimizer state has \d+ values, training \d+ variables needs \d+/));
  // Two first moments swapped (a kernel's and a bias'): as many values, the wrong shapes.
  const swapped = [...slots];
  [swapped[1], swapped[2]] = [swapped[2] as (typeof slots)[number], swapped[1] as (typeof slots)[number]];
  await assert.rejects(
    FoldTrainer.resume(encodeCheckpoint({ ...state, optimizer: [...swapped, ...powers] }), 'swapped.ckpt'),
    mismatch(/swapped\.ckpt: optimizer slot 1 \(.*\) has shape \[\d+\], the variable it belongs to \(.*\) has \[7,7,1,32\]/),
  );
  assert.equal(tf.memory().numTensors, before, 'a refused checkpoint leaves no model behind');
  // The state as saved still resumes.
  (await FoldTrainer.resume(encodeCheckpoint(state), 'ok.ckpt')).dispose();
});

test('a validation loss of NaN (training loss finite) is LOSS_NOT_FINITE, not a best epoch with a NaN loss', async () => {
  const t = FoldTrainer.create({ ...cfg, epochs: 2 });
  // A NaN batch-norm moving variance: training normalises with batch statistics (finite loss), inference with the NaN.
  t.setWeights(t.getWeights().map((w) => (w.name.endsWith('/moving_variance') ? { ...w, values: new Float32Array(w.values.length).fill(NaN) } : w)));
  await assert.rejects(
    t.fit({ train: randomImageSet(16, 28, 28, 1, 4), val }),
    (e: unknown) => e instanceof ModelError && e.code === 'LOSS_NOT_FINITE' && /validation loss became NaN in epoch 1 \(training loss \d/.test(e.message),
  );
  assert.equal(t.bestEpoch, null);
  t.dispose();
});
