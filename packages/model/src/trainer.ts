import { ADAM_POWERS, adamPowers, checkAdamSlots, restoreAdamPowers } from './adam-powers.js';
import { createRng, deriveSeed, permutation, throwIfAborted } from '@cvc/core';
import type { ImageSet } from '@cvc/data';
import { tf } from '@cvc/tfjs-runtime';
import { buildAutoencoder, type Autoencoder } from './build.js';
import { batchTensor } from './batches.js';
import { decodeCheckpoint, encodeCheckpoint, type NamedArray, type TrainingState } from './checkpoint.js';
import { ModelError } from './errors.js';
import type { EpochRecord, EvalMetrics } from './history.js';
import { computeLoss } from './losses.js';
import { shapeText } from './model-config.js';
import { resolveTrainConfig, type TrainConfig, type TrainConfigInput } from './spec.js';

/** Progress inside an epoch, reported at most every `progressIntervalMs`. */
export interface BatchProgress {
  readonly epoch: number;
  readonly epochs: number;
  readonly images: number;
  readonly totalImages: number;
  /** Mean training loss so far this epoch. */
  readonly loss: number;
  readonly imagesPerSec: number;
}

export interface FitCallbacks {
  readonly onBatch?: (p: BatchProgress) => void;
  /** Called after each epoch; `await trainer.checkpoint()` serialises the state at that point. */
  readonly onEpochEnd?: (r: EpochRecord, trainer: FoldTrainer) => void | Promise<void>;
  readonly signal?: AbortSignal;
  /** Wall time of each training step in seconds (metrics); reads no tensor. */
  readonly onStep?: (seconds: number) => void;
  /** Minimum milliseconds between onBatch calls (default 250). */
  readonly progressIntervalMs?: number;
  /** Clock in milliseconds (injected for tests; default performance.now). */
  readonly now?: () => number;
}

function checkShape(cfg: TrainConfig, set: ImageSet, what: string): void {
  const s = cfg.modelConfig.input;
  if (set.height !== s.height || set.width !== s.width || set.channels !== s.channels) {
    throw new ModelError(
      'SHAPE_MISMATCH',
      `model ${cfg.model} takes ${shapeText(s)} images, the ${what} images are ${set.height}x${set.width}x${set.channels}`,
    );
  }
  if (set.count === 0) throw new ModelError('EMPTY_DATA', `the ${what} set has no images`);
}

/**
 * Trains one fold's autoencoder. Resumable: `checkpoint()` captures weights,
 * batch-norm statistics, Adam's state, the epoch count and the best weights,
 * and `FoldTrainer.resume(bytes)` continues so that 1 + 1 epochs give the same
 * weights as 2. Each epoch's batch order is derived from (seed, epoch).
 */
export class FoldTrainer {
  readonly config: TrainConfig;
  readonly net: Autoencoder;
  private readonly optimizer: tf.AdamOptimizer;
  private readonly vars: tf.Variable[];
  private history: EpochRecord[] = [];
  private best: { epoch: number; valLoss: number; bnSteps: number; weights: NamedArray[] } | null = null;
  /** Training steps the current batch-norm moving statistics have seen. */
  private bnSteps = 0;

  private constructor(config: TrainConfig) {
    this.config = config;
    this.net = buildAutoencoder(config.modelConfig, { name: config.model, seed: config.seed });
    this.optimizer = tf.train.adam(config.learningRate, config.beta1, config.beta2, config.epsilon);
    this.vars = this.net.model.trainableWeights.map((w) => w.read() as tf.Variable);
  }

  static create(config: TrainConfigInput): FoldTrainer {
    return new FoldTrainer(resolveTrainConfig(config));
  }

  /**
   * Continues from a checkpoint made by `checkpoint()`. `epochs` raises (or
   * lowers) the total epoch count, e.g. to train a finished fold longer.
   */
  static async resume(bytes: Uint8Array, name = 'checkpoint', opts: { epochs?: number } = {}): Promise<FoldTrainer> {
    const state = decodeCheckpoint(bytes, name);
    const t = new FoldTrainer(resolveTrainConfig({ ...state.config, ...(opts.epochs !== undefined ? { epochs: opts.epochs } : {}) }));
    try {
      t.setWeights(state.weights, name);
      if (state.optimizer.length > 0) {
        checkAdamSlots(t.vars, state.optimizer, name);
        const values = state.optimizer
          .filter((a) => !a.name.startsWith(ADAM_POWERS))
          .map((a) => ({ name: a.name, tensor: tf.tensor(a.values, [...a.shape], a.dtype) }));
        try {
          await t.optimizer.setWeights(values);
        } finally {
          // Adam's variables were made from these (sharing their data); the handles themselves are ours to release.
          for (const v of values) v.tensor.dispose();
        }
        // Adam's setWeights recomputes beta^t with pow(); the saved running products keep a resumed fold on the uninterrupted path.
        restoreAdamPowers(t.optimizer, state.optimizer);
      }
    } catch (err) {
      t.dispose(); // a refused checkpoint leaves no model behind
      throw err;
    }
    t.history = [...state.history];
    t.bnSteps = state.bnSteps;
    t.best = state.best ? { epoch: state.best.epoch, valLoss: state.best.valLoss, bnSteps: state.best.bnSteps, weights: [...state.best.weights] } : null;
    return t;
  }

  get epochsDone(): number {
    return this.history.length;
  }

  get epochHistory(): readonly EpochRecord[] {
    return this.history;
  }

  get bestEpoch(): { epoch: number; valLoss: number } | null {
    return this.best ? { epoch: this.best.epoch, valLoss: this.best.valLoss } : null;
  }

  /** Current model weights (batch-norm statistics included), by layer-scoped name. */
  getWeights(): NamedArray[] {
    return this.net.model.weights.map((w) => {
      const t = w.read();
      return { name: w.originalName, shape: t.shape, dtype: 'float32' as const, values: t.dataSync() as Float32Array };
    });
  }

  setWeights(list: readonly NamedArray[], source = 'weights'): void {
    const byName = new Map(list.map((a) => [a.name, a]));
    for (const w of this.net.model.weights) {
      const a = byName.get(w.originalName);
      if (!a) throw new ModelError('CHECKPOINT_MISMATCH', `${source}: no value for weight ${w.originalName}`);
      if (a.shape.length !== w.shape.length || a.shape.some((d, i) => d !== w.shape[i])) {
        throw new ModelError(
          'CHECKPOINT_MISMATCH',
          `${source}: weight ${w.originalName} has shape [${a.shape.join(',')}], the model needs [${w.shape.join(',')}]`,
        );
      }
      const value = tf.tensor(a.values, [...a.shape], 'float32');
      w.write(value);
      value.dispose(); // the variable keeps the data; this handle would otherwise be counted forever
    }
  }

  /** Serialises the whole training state. */
  async checkpoint(): Promise<Uint8Array> {
    const opt = await this.optimizer.getWeights();
    const optimizer: NamedArray[] = opt.map((o) => ({
      name: o.name,
      shape: o.tensor.shape,
      dtype: o.tensor.dtype === 'int32' ? 'int32' : 'float32',
      values: o.tensor.dataSync() as Float32Array | Int32Array,
    }));
    // getWeights() makes a fresh scalar for the iteration count ('iter'); the rest are the optimizer's own variables.
    for (const o of opt) if (o.name === 'iter') o.tensor.dispose();
    optimizer.push(...adamPowers(this.optimizer));
    const state: TrainingState = {
      config: this.config,
      epochsDone: this.epochsDone,
      bnSteps: this.bnSteps,
      history: this.history,
      best: this.best,
      weights: this.getWeights(),
      optimizer,
    };
    return encodeCheckpoint(state);
  }

  /**
   * Trains until `config.epochs` epochs are done (continuing after a resume),
   * evaluating on `val` after each epoch and keeping the weights with the
   * lowest validation loss.
   */
  async fit(data: { train: ImageSet; val: ImageSet }, cb: FitCallbacks = {}): Promise<readonly EpochRecord[]> {
    checkShape(this.config, data.train, 'training');
    checkShape(this.config, data.val, 'validation');
    const now = cb.now ?? (() => performance.now());
    const interval = cb.progressIntervalMs ?? 250;
    const { epochs, batchSize } = this.config;
    for (let epoch = this.epochsDone + 1; epoch <= epochs; epoch++) {
      throwIfAborted(cb.signal, `epoch ${epoch}`);
      const order = permutation(data.train.count, createRng(deriveSeed(this.config.seed, 0x5eed, epoch)));
      const t0 = now();
      let lastReport = t0;
      let lossSum = tf.scalar(0);
      let seen = 0;
      for (let start = 0; start < data.train.count; start += batchSize) {
        throwIfAborted(cb.signal, `epoch ${epoch}`);
        const size = Math.min(batchSize, data.train.count - start);
        const stepStart = now();
        const next = tf.tidy(() => {
          const x = batchTensor(data.train, order, start, size);
          const loss = this.optimizer.minimize(
            () => computeLoss(this.config.loss, this.net.model.apply(x, { training: true }) as tf.Tensor, x).loss,
            true,
            this.vars,
          ) as tf.Scalar;
          return tf.add<tf.Scalar>(lossSum, tf.mul(loss, size));
        });
        lossSum.dispose();
        lossSum = next;
        seen += size;
        this.bnSteps++;
        const t = now();
        cb.onStep?.((t - stepStart) / 1000);
        if (cb.onBatch && (t - lastReport >= interval || seen === data.train.count)) {
          lastReport = t;
          const secs = Math.max((t - t0) / 1000, 1e-9);
          cb.onBatch({
            epoch,
            epochs,
            images: seen,
            totalImages: data.train.count,
            loss: ((await lossSum.data())[0] as number) / seen,
            imagesPerSec: seen / secs,
          });
        }
        // Let timers (the task heartbeat), signals and I/O run between batches.
        await yieldToEventLoop();
      }
      const seconds = (now() - t0) / 1000;
      const loss = ((await lossSum.data())[0] as number) / seen;
      lossSum.dispose();
      if (!Number.isFinite(loss)) throw new ModelError('LOSS_NOT_FINITE', `training loss became ${loss} in epoch ${epoch}`);
      const val = await this.evaluate(data.val);
      // A NaN would never compare below the best (or, first, stay the best for good): fail as the training loss does.
      if (!Number.isFinite(val.loss)) throw new ModelError('LOSS_NOT_FINITE', `validation loss became ${val.loss} in epoch ${epoch} (training loss ${loss})`);
      const record: EpochRecord = {
        epoch,
        loss,
        valLoss: val.loss,
        valMse: val.mse,
        ...(val.cosine !== undefined ? { valCosine: val.cosine } : {}),
        seconds,
        imagesPerSec: data.train.count / Math.max(seconds, 1e-9),
      };
      this.history.push(record);
      if (this.best === null || val.loss < this.best.valLoss) this.best = { epoch, valLoss: val.loss, bnSteps: this.bnSteps, weights: this.getWeights() };
      if (cb.onEpochEnd) await cb.onEpochEnd(record, this);
    }
    return this.history;
  }

  /**
   * Runs `fn` with the batch-norm moving statistics replaced by their
   * zero-debiased values (see `bnDebias`), then puts the raw values back, so
   * training and checkpoints are unaffected.
   */
  withInferenceStats<T>(fn: () => T): T {
    const restore = this.useInferenceStats();
    try {
      return fn();
    } finally {
      restore();
    }
  }

  /** Swaps the debiased batch-norm statistics in; the function returned puts the raw ones back. */
  private useInferenceStats(): () => void {
    if (!this.config.bnDebias || this.bnSteps === 0) return () => undefined;
    const saved: { v: tf.LayerVariable; raw: tf.Tensor; debiased: tf.Tensor }[] = [];
    for (const layer of this.net.model.layers) {
      if (layer.getClassName() !== 'BatchNormalization') continue;
      const c = Math.pow(Number(layer.getConfig()['momentum']), this.bnSteps);
      if (c < 1e-12) continue;
      for (const v of layer.weights) {
        const isMean = v.originalName.endsWith('/moving_mean');
        if (!isMean && !v.originalName.endsWith('/moving_variance')) continue;
        const raw = v.read().clone();
        // mean: m / (1 - c); variance (initialised to 1): (v - c) / (1 - c).
        const debiased = tf.tidy(() => (isMean ? tf.div(raw, 1 - c) : tf.relu(tf.div(tf.sub(raw, c), 1 - c))));
        v.write(debiased);
        saved.push({ v, raw, debiased });
      }
    }
    return () => {
      for (const { v, raw, debiased } of saved) {
        v.write(raw);
        raw.dispose();
        debiased.dispose();
      }
    };
  }

  /**
   * Loss and metrics on `set` in inference mode (moving batch-norm
   * statistics). Yields to the event loop between batches: a test split of
   * 10 000 images takes a while on a CPU backend, and the worker's task
   * heartbeat must keep running meanwhile. An abort of `opts.signal` ends it
   * before the next batch (CancelledError).
   */
  async evaluate(set: ImageSet, opts: { signal?: AbortSignal } = {}): Promise<EvalMetrics> {
    checkShape(this.config, set, 'evaluation');
    const restore = this.useInferenceStats();
    try {
      return await this.evaluateRaw(set, opts.signal);
    } finally {
      restore();
    }
  }

  private async evaluateRaw(set: ImageSet, signal?: AbortSignal): Promise<EvalMetrics> {
    const bs = this.config.evalBatchSize;
    let loss = 0;
    let mse = 0;
    let cosine = 0;
    for (let start = 0; start < set.count; start += bs) {
      throwIfAborted(signal, `evaluating ${set.count} images`);
      const size = Math.min(bs, set.count - start);
      const vals = tf.tidy(() => {
        const x = batchTensor(set, undefined, start, size);
        const parts = computeLoss(this.config.loss, this.net.model.apply(x, { training: false }) as tf.Tensor, x);
        return tf.stack([parts.loss, parts.mse, parts.cosine ?? tf.scalar(0)]);
      });
      const [l, m, c] = vals.dataSync() as Float32Array;
      vals.dispose();
      loss += (l as number) * size;
      mse += (m as number) * size;
      cosine += (c as number) * size;
      await yieldToEventLoop();
    }
    const n = set.count;
    return { loss: loss / n, mse: mse / n, ...(this.config.loss === 'mse-cosine' ? { cosine: cosine / n } : {}), count: n };
  }

  /**
   * The encoder as a TensorFlow.js layers model (model.json + one weights
   * file) that plain `tf.loadLayersModel` loads, with the inference-time
   * (debiased) batch-norm statistics baked in. Its `userDefinedMetadata.cvc`
   * records the model name and the full model config.
   */
  async exportEncoder(): Promise<{ modelJson: string; weights: Uint8Array }> {
    let artifacts: tf.io.ModelArtifacts | undefined;
    const handler = tf.io.withSaveHandler((a) => {
      artifacts = a;
      return Promise.resolve({ modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } });
    });
    // Snapshot under the inference statistics, then save outside the swap (save is async).
    const snapshot = this.withInferenceStats(() => this.net.encoder.weights.map((w) => w.read().clone()));
    const original = this.net.encoder.weights.map((w) => w.read().clone());
    this.net.encoder.weights.forEach((w, i) => w.write(snapshot[i] as tf.Tensor));
    try {
      await this.net.encoder.save(handler);
    } finally {
      this.net.encoder.weights.forEach((w, i) => w.write(original[i] as tf.Tensor));
      for (const t of [...snapshot, ...original]) t.dispose();
    }
    if (!artifacts?.weightData || !artifacts.weightSpecs) throw new ModelError('EXPORT_FAILED', 'the encoder produced no weights');
    const weights = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData));
    const modelJson = JSON.stringify({
      format: 'layers-model',
      generatedBy: 'cvc',
      convertedBy: null,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
      // tf.loadLayersModel ignores it; readEncoderModelConfig reads it back.
      userDefinedMetadata: { cvc: { model: this.config.model, modelConfig: this.config.modelConfig } },
    });
    return { modelJson, weights };
  }

  /** Loads the weights with the lowest validation loss (save-best-only). */
  restoreBest(): void {
    if (this.best) {
      this.setWeights(this.best.weights, `best weights (epoch ${this.best.epoch})`);
      this.bnSteps = this.best.bnSteps;
    }
  }

  dispose(): void {
    this.net.model.dispose();
    this.optimizer.dispose();
  }
}

/** Lets timers, signals and I/O run (a macrotask turn) between batches of synchronous backend work. */
function yieldToEventLoop(): Promise<void> {
  return new Promise<void>((r) => setImmediate(r));
}
