import { test } from 'node:test';
import assert from 'node:assert/strict';
import { klDivergence, softAssignment, targetDistribution } from '@cvc/clustering';
import { createRng } from '@cvc/core';
import type { ImageSet } from '@cvc/data';
import { initBackend, tf } from '@cvc/tfjs-runtime';
import {
  FoldTrainer,
  ModelError,
  decodeCheckpoint,
  decodeClusterState,
  encodeCheckpoint,
  encodeClusterState,
  fineTuneClustering,
  klDivergenceTensor,
  softAssignmentTensor,
  type ClusterStateMeta,
  type FineTuneOptions,
  type FineTuneProgress,
  type NamedArray,
  type TrainingState,
} from './index.js';

await initBackend('wasm');

/**
 * Three well-separated kinds of 28x28 image: a bright square top-left, a
 * ring in the middle, a bar at the bottom, each jittered by a pixel or two
 * and lightly noised. Labels are the kinds.
 */
function threeKinds(count: number, seed: number): ImageSet {
  const rng = createRng(seed);
  const images = new Uint8Array(count * 784);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const kind = i % 3;
    labels[i] = kind;
    const dy = rng.int(3) - 1;
    const dx = rng.int(3) - 1;
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const yy = y - dy;
        const xx = x - dx;
        const r = Math.hypot(yy - 14, xx - 14);
        const on = kind === 0 ? yy >= 3 && yy < 12 && xx >= 3 && xx < 12 : kind === 1 ? r >= 6 && r < 9 : yy >= 21 && yy < 25 && xx >= 4 && xx < 24;
        images[i * 784 + y * 28 + x] = Math.min(255, (on ? 220 : 0) + rng.int(30));
      }
    }
  }
  return { images, labels, count, height: 28, width: 28, channels: 1 };
}

const images = threeKinds(60, 5);
const trainer = FoldTrainer.create({ model: 'seed-mnist', epochs: 1, batchSize: 12, learningRate: 1e-3, seed: 3 });
await trainer.fit({ train: images, val: threeKinds(12, 6) });
trainer.restoreBest();
const source: TrainingState = decodeCheckpoint(await trainer.checkpoint());
const modelConfig = trainer.config.modelConfig;
trainer.dispose();

const base: FineTuneOptions = { method: 'dcec', k: 3, maxIterations: 10, updateInterval: 5, batchSize: 12, learningRate: 1e-3, seed: 7, kmeansInit: 5 };
const tune = (o: Partial<FineTuneOptions> = {}): ReturnType<typeof fineTuneClustering> =>
  fineTuneClustering({ modelConfig, source, images }, { ...base, ...o });

function maxDiff(a: readonly NamedArray[], b: readonly NamedArray[], only?: (name: string) => boolean): number {
  const byName = new Map(b.map((w) => [w.name, w]));
  let m = 0;
  for (const w of a) {
    if (only && !only(w.name)) continue;
    const o = byName.get(w.name);
    assert.ok(o, `weight ${w.name} is in both`);
    w.values.forEach((v, j) => (m = Math.max(m, Math.abs(v - (o.values[j] as number)))));
  }
  return m;
}

test('the tensor soft assignment and KL match the hand-checked array versions', () => {
  const rng = createRng(1);
  const zv = Float32Array.from({ length: 7 * 4 }, () => rng.next() * 4 - 2);
  const mv = Float32Array.from({ length: 3 * 4 }, () => rng.next() * 4 - 2);
  const before = tf.memory().numTensors;
  const [q, kl, p] = tf.tidy(() => {
    const qt = softAssignmentTensor(tf.tensor2d(zv, [7, 4]), tf.tensor2d(mv, [3, 4]));
    const pt = tf.tensor2d(Float32Array.from(targetDistribution(qt.dataSync(), 7, 3)), [7, 3]);
    return [qt.dataSync(), klDivergenceTensor(pt, qt).dataSync()[0] as number, pt.dataSync()];
  });
  assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
  const want = softAssignment(zv, mv, 7, 4, 3);
  want.forEach((v, i) => assert.ok(Math.abs(v - (q[i] as number)) < 1e-6, `q[${i}]: ${q[i]} vs ${v}`));
  const wantKl = klDivergence(p, want, 7, 3);
  assert.ok(Math.abs(kl - wantKl) < 1e-5, `KL ${kl} vs ${wantKl}`);
  assert.ok(wantKl > 0);
});

test('a DCEC fine-tune lowers KL(P0‖Q) on well-separated images and yields an exportable autoencoder', async () => {
  const before = tf.memory().numTensors;
  // The initial state alone: k-means on the untouched codes.
  const init = await tune({ maxIterations: 0 });
  assert.equal(init.stopReason, 'max-iterations');
  assert.equal(init.iterations, 0);
  const q0 = softAssignment(init.codes, init.centres, 60, init.d, 3);
  const p0 = targetDistribution(q0, 60, 3);
  const kl0 = klDivergence(p0, q0, 60, 3);

  const progress: FineTuneProgress[] = [];
  // One target for the whole run (no refresh before the end): the loss being trained is KL(P0‖Q).
  const r = await tune({ maxIterations: 25, updateInterval: 1000, tol: 0, labels: images.labels, onProgress: (p) => void progress.push(p) });
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
  assert.equal(r.stopReason, 'max-iterations');
  assert.equal(r.iterations, 25);
  assert.deepEqual(
    progress.map((p) => p.iteration),
    [0, 25],
  );
  assert.ok(progress[0]?.acc !== undefined && progress[0].nmi !== undefined && progress[0].ari !== undefined, 'scores when labels are given');
  assert.ok(Math.abs((progress[0]?.clusterLoss ?? NaN) - kl0) < 1e-4, `the first report is the whole set's KL(P0‖Q0) = ${kl0}`);
  assert.ok((progress[0]?.reconstructionLoss ?? 0) > 0, 'dcec reports its reconstruction loss');
  const q1 = softAssignment(r.codes, r.centres, 60, r.d, 3);
  const kl1 = klDivergence(p0, q1, 60, 3);
  assert.ok(kl1 < 0.7 * kl0, `KL(P0‖Q) fell from ${kl0} to ${kl1}`);
  assert.deepEqual(r.initial, { acc: progress[0]?.acc, nmi: progress[0]?.nmi, ari: progress[0]?.ari });
  assert.ok(r.final && r.final.acc >= 0.9, `the three kinds are found (accuracy ${r.final?.acc})`);
  assert.equal(r.assignments.length, 60);
  assert.equal(r.codes.length, 60 * r.d);
  r.confidence.forEach((c, i) => assert.ok(c >= 1 / 3 - 1e-6 && c <= 1, `confidence ${i}: ${c}`));

  // The state is a fold checkpoint: the coordinator's export path gives an encoder computing the same codes.
  const t = await FoldTrainer.resume(encodeCheckpoint(r.state), 'fine-tuned');
  try {
    const codes = t.withInferenceStats(() =>
      tf
        .tidy(
          () =>
            t.net.encoder.predict(
              tf.tensor4d(
                Float32Array.from(images.images, (v) => v / 255),
                [60, 28, 28, 1],
              ),
            ) as tf.Tensor,
        )
        .dataSync(),
    );
    let d = 0;
    codes.forEach((v, i) => (d = Math.max(d, Math.abs(v - (r.codes[i] as number)))));
    assert.ok(d < 1e-4, `the exported encoder's codes differ by ${d}`);
    const { modelJson } = await t.exportEncoder();
    assert.match(modelJson, /seed-mnist/);
  } finally {
    t.dispose();
  }
  assert.ok(maxDiff(source.weights, r.state.weights, (n) => n.startsWith('dec_')) > 1e-4, 'dcec trains the decoder');
  assert.equal(
    maxDiff(source.weights, r.state.weights, (n) => n.includes('moving_')),
    0,
    'batch-norm statistics stay raw and unchanged',
  );
});

test('DEC trains the encoder only; the stop rule ends a run at a refresh', async () => {
  const before = tf.memory().numTensors;
  const r = await tune({ method: 'dec', maxIterations: 10, updateInterval: 5 });
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
  assert.equal(
    maxDiff(source.weights, r.state.weights, (n) => n.startsWith('dec_') || n.startsWith('reconstruction')),
    0,
    'the decoder is untouched',
  );
  assert.ok(maxDiff(source.weights, r.state.weights, (n) => n.startsWith('enc_') || n.startsWith('code')) > 1e-5, 'the encoder moved');
  // tol 1: any refresh after the first one has changed < tol.
  const progress: number[] = [];
  const c = await tune({ tol: 1, maxIterations: 100, updateInterval: 3, onProgress: (p) => void progress.push(p.iteration) });
  assert.equal(c.stopReason, 'converged');
  assert.equal(c.iterations, 3);
  assert.deepEqual(progress, [0, 3]);
});

test('checkpoints come after every checkpointEvery-th refresh, never after the last one', async () => {
  const at: number[] = [];
  const r = await tune({
    method: 'dec',
    maxIterations: 8,
    updateInterval: 2,
    tol: 0,
    checkpointEvery: 2,
    onCheckpoint: (_s, it) => (at.push(it), Promise.resolve()),
  });
  assert.equal(r.iterations, 8);
  // Refreshes at 0, 2, 4, 6, 8: the 1st, 3rd (and 5th, the final one: nothing left to resume).
  assert.deepEqual(at, [0, 4]);
});

test('an abort stops after the current batch with ModelError ABORTED and leaves no tensors', async () => {
  const before = tf.memory().numTensors;
  const ac = new AbortController();
  let batchesAtAbort = -1;
  await assert.rejects(
    tune({
      maxIterations: 100,
      updateInterval: 4,
      tol: 0,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.iteration === 4) {
          batchesAtAbort = p.iteration;
          ac.abort();
        }
      },
    }),
    (e: unknown) => e instanceof ModelError && e.code === 'ABORTED' && /iteration 4 of 100/.test(e.message),
  );
  assert.equal(batchesAtAbort, 4);
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks after an abort');
});

test('2 refreshes + resume + 2 refreshes equal 4 refreshes straight', async () => {
  const opts = { maxIterations: 8, updateInterval: 2, tol: 0, labels: images.labels };
  const straightProgress: FineTuneProgress[] = [];
  const straight = await tune({ ...opts, onProgress: (p) => void straightProgress.push(p) });
  assert.equal(straight.iterations, 8);

  const ac = new AbortController();
  let saved: Uint8Array | undefined;
  await assert.rejects(
    tune({
      ...opts,
      signal: ac.signal,
      onCheckpoint: (state, iteration) => {
        if (iteration === 2) {
          saved = state;
          ac.abort();
        }
        return Promise.resolve();
      },
    }),
    (e: unknown) => e instanceof ModelError && e.code === 'ABORTED',
  );
  assert.ok(saved, 'a checkpoint at iteration 2');
  const state = decodeClusterState(saved);
  assert.equal(state.meta.iteration, 2);
  assert.equal(state.meta.refreshes, 2);
  assert.ok(state.optimizer.length > 1, "Adam's state is saved");

  const before = tf.memory().numTensors;
  const resumedProgress: FineTuneProgress[] = [];
  // As read from disk: a Node Buffer.
  const resumed = await tune({ ...opts, resume: Buffer.from(saved), onProgress: (p) => void resumedProgress.push(p) });
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks after a resume');
  assert.equal(resumed.iterations, 8);
  assert.deepEqual([...resumed.assignments], [...straight.assignments]);
  const d = maxDiff(straight.state.weights, resumed.state.weights);
  assert.ok(d < 1e-5, `weights differ by ${d}`);
  assert.deepEqual(resumed.initial, straight.initial);
  assert.deepEqual(
    resumedProgress.map((p) => [p.iteration, p.changed, p.acc]),
    straightProgress.slice(2).map((p) => [p.iteration, p.changed, p.acc]),
  );
  // A resume that lost Adam's state would differ: the test can tell.
  const noOpt = await tune({ ...opts, resume: encodeClusterState({ ...state, optimizer: [] }) });
  assert.ok(maxDiff(straight.state.weights, noOpt.state.weights) > 1e-4, 'resuming without optimizer state gives other weights');
});

test('bad options, images and resume states are refused clearly', async () => {
  await assert.rejects(tune({ k: 0 }), /k/);
  await assert.rejects(tune({ k: 61 }), (e: unknown) => e instanceof ModelError && e.code === 'EMPTY_DATA');
  await assert.rejects(
    fineTuneClustering({ modelConfig, source, images: { ...images, height: 32, width: 32, images: new Uint8Array(60 * 1024) } }, base),
    (e: unknown) => e instanceof ModelError && e.code === 'SHAPE_MISMATCH',
  );
  let saved: Uint8Array | undefined;
  await tune({ maxIterations: 2, updateInterval: 1, onCheckpoint: (s) => ((saved = s), Promise.resolve()) });
  assert.ok(saved);
  await assert.rejects(
    tune({ k: 4, resume: saved }),
    (e: unknown) => e instanceof ModelError && e.code === 'CHECKPOINT_MISMATCH' && /k is 3, this fine-tune has 4/.test(e.message),
  );
  const bad = saved.slice();
  bad[bad.length - 40] = (bad[bad.length - 40] as number) ^ 1;
  await assert.rejects(tune({ resume: bad }), (e: unknown) => e instanceof ModelError && e.code === 'CHECKPOINT_CHECKSUM');
  await assert.rejects(tune({ resume: encodeCheckpoint(source) }), (e: unknown) => e instanceof ModelError && e.code === 'CHECKPOINT_CORRUPT');
});

test('NaN in the source checkpoint is refused naming the weight; NaN codes during the fine-tune are LOSS_NOT_FINITE, not NaN assignments', async () => {
  const nanKernel = (w: NamedArray): NamedArray =>
    w.name.startsWith('enc_conv1') && w.name.endsWith('kernel') ? { ...w, values: Float32Array.from(w.values, (v, i) => (i === 3 ? NaN : v)) } : w;
  const poisoned: TrainingState = { ...source, weights: source.weights.map(nanKernel) };
  const before = tf.memory().numTensors;
  await assert.rejects(
    fineTuneClustering({ modelConfig, source: poisoned, images }, base),
    (err: unknown) =>
      err instanceof ModelError && err.code === 'CHECKPOINT_CORRUPT' && /source checkpoint: weight enc_conv1\/kernel holds NaN \(value 3\)/.test(err.message),
  );
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});

test('a resume state whose centres hold NaN ends in LOSS_NOT_FINITE naming the centres at the first refresh, never in NaN results', async () => {
  let saved: Uint8Array | undefined;
  await tune({
    maxIterations: 4,
    updateInterval: 2,
    tol: 0,
    onCheckpoint: (state, iteration) => {
      if (iteration === 2) saved = state;
      return Promise.resolve();
    },
  });
  assert.ok(saved, 'a checkpoint at iteration 2');
  const state = decodeClusterState(saved);
  const centres = Float32Array.from(state.centres);
  centres[1] = NaN;
  // maxIterations 2: the resumed fine-tune refreshes at once, with no batch in between.
  await assert.rejects(
    tune({ maxIterations: 2, updateInterval: 2, tol: 0, resume: encodeClusterState({ ...state, centres }) }),
    (err: unknown) =>
      err instanceof ModelError && err.code === 'LOSS_NOT_FINITE' && /the cluster centres hold NaN \(centre 0\) at iteration 2/.test(err.message),
  );
  // NaN in a resumed weight is refused before anything runs, naming it.
  await assert.rejects(
    tune({
      maxIterations: 4,
      updateInterval: 2,
      resume: encodeClusterState({
        ...state,
        weights: state.weights.map((w, i) => (i === 0 ? { ...w, values: Float32Array.from(w.values, () => Infinity) } : w)),
      }),
    }),
    (err: unknown) => err instanceof ModelError && err.code === 'CHECKPOINT_CORRUPT' && /resume state: weight .* holds Infinity/.test(err.message),
  );
});

test('a resume state of other images (same n) or another source is CHECKPOINT_MISMATCH; one without the hashes resumes with a warning', async () => {
  let saved: Uint8Array | undefined;
  await tune({ maxIterations: 2, updateInterval: 1, tol: 0, onCheckpoint: (s) => ((saved = s), Promise.resolve()) });
  assert.ok(saved);
  const state = decodeClusterState(saved);
  assert.equal(state.meta.iteration, 1);
  assert.match(state.meta.imagesSha256 ?? '', /^[0-9a-f]{64}$/);
  const other = Uint8Array.from(images.images);
  other[100] = (other[100] as number) ^ 1;
  await assert.rejects(
    fineTuneClustering({ modelConfig, source, images: { ...images, images: other } }, { ...base, maxIterations: 2, updateInterval: 1, resume: saved }),
    (e: unknown) =>
      e instanceof ModelError && e.code === 'CHECKPOINT_MISMATCH' && /resume state: was taken with other images \(sha256 [0-9a-f]{12}…/.test(e.message),
  );
  const otherSource: TrainingState = {
    ...source,
    weights: source.weights.map((w, i) => (i === 0 ? { ...w, values: Float32Array.from(w.values, (v, j) => (j === 0 ? v + 1e-3 : v)) } : w)),
  };
  await assert.rejects(
    fineTuneClustering({ modelConfig, source: otherSource, images }, { ...base, maxIterations: 2, updateInterval: 1, resume: saved }),
    (e: unknown) => e instanceof ModelError && e.code === 'CHECKPOINT_MISMATCH' && /other source checkpoint's weights/.test(e.message),
  );
  // A state from before the hashes: resumed, with a warning that says it is unchecked.
  // JSON drops undefined: the header is as an older cvc wrote it.
  const oldMeta: ClusterStateMeta = { ...state.meta, imagesSha256: undefined, sourceSha256: undefined };
  const warnings: string[] = [];
  const r = await tune({
    maxIterations: 2,
    updateInterval: 1,
    tol: 0,
    resume: encodeClusterState({ ...state, meta: oldMeta }),
    onWarning: (m) => void warnings.push(m),
  });
  assert.equal(r.iterations, 2);
  assert.deepEqual(warnings, [
    "resume state: records no sha256 of the images or the source checkpoint's weights (written by an older cvc); resuming unchecked, so it must come from this fine-tune's own images and source",
  ]);
});

test('a resume whose optimizer restore fails leaves no slot tensors behind', async () => {
  let saved: Uint8Array | undefined;
  await tune({ maxIterations: 2, updateInterval: 1, tol: 0, onCheckpoint: (s) => ((saved = s), Promise.resolve()) });
  assert.ok(saved);
  assert.ok(decodeClusterState(saved).optimizer.length > 1, "the state holds Adam's slots");
  const proto = tf.AdamOptimizer.prototype;
  const setWeights = Object.getOwnPropertyDescriptor(proto, 'setWeights');
  // A setWeights that fails (as tfjs may on a state it cannot take), after the slot tensors were made.
  proto.setWeights = () => Promise.reject(new Error('injected setWeights failure'));
  const before = tf.memory().numTensors;
  try {
    await assert.rejects(tune({ maxIterations: 2, updateInterval: 1, tol: 0, resume: saved }), /injected setWeights failure/);
  } finally {
    if (setWeights) Object.defineProperty(proto, 'setWeights', setWeights);
  }
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});
