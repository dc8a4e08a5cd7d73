import {
  argmaxRows,
  changedShare,
  kmeans,
  klDivergence,
  scoreClustering,
  softAssignment,
  stopDecision,
  targetDistribution,
  KL_EPSILON,
  type StopReason,
} from '@cvc/clustering';
import { createRng, deriveSeed, permutation, resolveOptions } from '@cvc/core';
import type { ImageSet } from '@cvc/data';
import { tf } from '@cvc/tfjs-runtime';
import { z } from 'zod';
import { batchTensor } from './batches.js';
import { buildAutoencoder, type Autoencoder } from './build.js';
import type { NamedArray, TrainingState } from './checkpoint.js';
import {
  decodeClusterState,
  encodeClusterState,
  imageSetSha256,
  weightsSha256,
  FINE_TUNE_METHODS,
  type ClusterScores,
  type ClusterState,
  type ClusterStateMeta,
} from './cluster-state.js';
import { ModelError } from './errors.js';
import { computeLoss } from './losses.js';
import { shapeText, type ResolvedModelConfig } from './model-config.js';
import { ADAM_POWERS, adamPowers, checkAdamSlots, restoreAdamPowers } from './adam-powers.js';
import { seedSchema } from './spec.js';

/**
 * How to fine-tune. `dec` trains the encoder and the centres on KL(P‖Q) alone
 * (Xie et al., 2016). `idec` and `dcec` train the whole autoencoder and the
 * centres on L = Lr + gamma x KL(P‖Q), Lr being the model's own
 * reconstruction loss (Guo et al., 2017: IDEC with a dense autoencoder, DCEC
 * with a convolutional one, both with gamma = 0.1, batch 256, P refreshed
 * every 140 batches, stopping when fewer than 0.1% of assignments change).
 * On a cvc autoencoder the two are the same objective; both names are kept
 * because the literature uses both.
 */
export interface FineTuneOptions {
  readonly method: 'dec' | 'idec' | 'dcec';
  /** Clusters. */
  readonly k: number;
  /**
   * idec/dcec: the weight of the clustering loss against the reconstruction
   * loss, L = Lr + gamma x KL(P‖Q), as IDEC and DCEC define it (default 0.1).
   * Unused by dec.
   */
  readonly gamma?: number;
  /** Batches between refreshes of the target P (default 140). */
  readonly updateInterval?: number;
  /** Stop at a refresh when fewer than this share of the assignments changed (default 0.001). */
  readonly tol?: number;
  /** Batch budget: the fine-tune stops after this many batches at the latest. */
  readonly maxIterations: number;
  /** Images per batch (default 256). */
  readonly batchSize?: number;
  /** Adam's learning rate (default 1e-3, DCEC's). */
  readonly learningRate?: number;
  /** Seeds the k-means initialisation and the batch order. */
  readonly seed: number;
  /** k-means restarts for the initial centres (default 20, as DEC and DCEC used). */
  readonly kmeansInit?: number;
  /** Batch size of the forward passes over the whole set (no effect on results; default 256). */
  readonly evalBatchSize?: number;
  /** Call `onCheckpoint` after every this many refreshes (default 1: each one). */
  readonly checkpointEvery?: number;
  /** True classes of the images (one per image): progress and the result then carry acc, NMI and ARI. */
  readonly labels?: ArrayLike<number>;
  /** Aborting stops the fine-tune after the current batch with ModelError('ABORTED'). */
  readonly signal?: AbortSignal;
  /**
   * Bytes from a previous `onCheckpoint` of the same fine-tune (same source,
   * images and settings): it continues from there. A state of other images or
   * another source (their sha256 differ) is CHECKPOINT_MISMATCH; a state
   * written before cvc recorded those hashes is resumed with a warning.
   */
  readonly resume?: Uint8Array;
  /** Gets warnings (a resume state that cannot be checked against the images and source); default: `process.emitWarning`. */
  readonly onWarning?: (message: string) => void;
  /** At each refresh of P (the first one, at iteration 0, carries the k-means initialisation's scores). */
  readonly onProgress?: (p: FineTuneProgress) => void | Promise<void>;
  /** After each refresh (or every `checkpointEvery`), the state to resume from and the batches done. */
  readonly onCheckpoint?: (state: Uint8Array, iteration: number) => Promise<void>;
}

/** Where a fine-tune stands, at one refresh of the target. */
export interface FineTuneProgress {
  /** Batches trained. */
  readonly iteration: number;
  readonly maxIterations: number;
  /**
   * Mean training losses over the batches since the previous report; at
   * iteration 0 (no batch yet) the cluster loss of the whole set under the
   * initial target and the reconstruction loss of the set's first
   * `evalBatchSize` images. reconstructionLoss is 0 for dec (not part of its loss).
   */
  readonly loss: number;
  readonly clusterLoss: number;
  readonly reconstructionLoss: number;
  /** Share of assignments that changed since the previous refresh (at iteration 0: against the k-means labels). */
  readonly changed: number;
  readonly acc?: number;
  readonly nmi?: number;
  readonly ari?: number;
  /** Wall seconds since the fine-tune began (summed over resumes). */
  readonly seconds: number;
}

export interface FineTuneResult {
  /** The cluster of each image (argmax_j q_ij). */
  readonly assignments: Int32Array;
  /** max_j q_ij of each image. */
  readonly confidence: Float32Array;
  /** The fine-tuned encoder's codes, n x d row-major. */
  readonly codes: Float32Array;
  readonly d: number;
  /** Cluster centres, k x d row-major. */
  readonly centres: Float32Array;
  /** Batches trained. */
  readonly iterations: number;
  readonly stopReason: StopReason;
  /** Scores of the k-means initialisation and of the result (when labels were given). */
  readonly initial?: ClusterScores;
  readonly final?: ClusterScores;
  /**
   * The fine-tuned autoencoder in the format of a fold's best checkpoint
   * (`encodeCheckpoint` it; `FoldTrainer.resume` + `exportEncoder` give the
   * encoder): the source's config, epoch count, history and batch-norm step
   * count, the fine-tuned weights, no optimizer state and no best weights
   * (a validation loss no longer describes them).
   */
  readonly state: TrainingState;
}

const optionsSchema = z.object({
  method: z.enum(FINE_TUNE_METHODS),
  k: z.number().int().min(1).max(10_000),
  gamma: z.number().min(0).default(0.1),
  updateInterval: z.number().int().min(1).default(140),
  tol: z.number().min(0).max(1).default(0.001),
  maxIterations: z.number().int().min(0).max(100_000_000),
  batchSize: z.number().int().min(1).max(65_536).default(256),
  learningRate: z.number().positive().max(1).default(1e-3),
  seed: seedSchema,
  kmeansInit: z.number().int().min(1).max(1000).default(20),
  evalBatchSize: z.number().int().min(1).default(256),
  checkpointEvery: z.number().int().min(1).default(1),
});
type Settings = z.output<typeof optionsSchema>;

/**
 * Deep clustering: fine-tunes a trained autoencoder's encoder (and for
 * idec/dcec its decoder) together with a clustering layer of k centres,
 * initialised by k-means on the codes. Every `updateInterval` batches the
 * target P is recomputed from the soft assignments Q of the whole set, and
 * the fine-tune stops once fewer than `tol` of the assignments change between
 * two refreshes, or after `maxIterations` batches.
 *
 * Batch-norm layers run in inference mode with the source's (debiased)
 * moving statistics, which stay as they were: the codes the fine-tune
 * optimises are the codes the exported encoder computes. Deterministic for a
 * seed (the batch order of each pass over the set comes from (seed, pass)),
 * and resumable: a run continued from an `onCheckpoint` state gives the same
 * result as one that was never stopped.
 */
export async function fineTuneClustering(
  input: { modelConfig: ResolvedModelConfig; source: TrainingState; images: ImageSet },
  opts: FineTuneOptions,
): Promise<FineTuneResult> {
  const { signal, labels, onProgress, onCheckpoint, resume, onWarning, ...rest } = opts;
  const s = resolveOptions(optionsSchema, rest, 'fine-tune options');
  const { images, source, modelConfig } = input;
  const n = images.count;
  const inShape = modelConfig.input;
  if (images.height !== inShape.height || images.width !== inShape.width || images.channels !== inShape.channels) {
    throw new ModelError(
      'SHAPE_MISMATCH',
      `the model takes ${shapeText(inShape)} images, the images to cluster are ${images.height}x${images.width}x${images.channels}`,
    );
  }
  if (n === 0) throw new ModelError('EMPTY_DATA', 'no images to cluster');
  if (s.k > n) throw new ModelError('EMPTY_DATA', `k = ${s.k} clusters but only ${n} images`);
  if (labels && labels.length !== n) throw new ModelError('SHAPE_MISMATCH', `${labels.length} labels for ${n} images`);
  const d = modelConfig.codeSize;
  const prior = resume ? decodeClusterState(resume, 'resume state') : null;
  // What a state records of the images and the source (hashed only when a state is read or written).
  const identity = prior || onCheckpoint ? { imagesSha256: imageSetSha256(images), sourceSha256: weightsSha256(source.weights, source.bnSteps) } : null;
  if (prior && identity) checkResumable(prior.meta, s, n, d, identity, onWarning ?? ((m) => process.emitWarning(m, { code: 'CVC_RESUME_UNCHECKED' })));

  const net = buildAutoencoder(modelConfig, { name: source.config.model, seed: s.seed });
  const optimizer = tf.train.adam(s.learningRate, 0.9, 0.999, 1e-7);
  const mu = tf.tidy(() => tf.variable(tf.zeros([s.k, d]), true));
  const both = tf.model({ inputs: net.model.inputs, outputs: [net.encoder.outputs[0] as tf.SymbolicTensor, net.model.outputs[0] as tf.SymbolicTensor] });
  const vars = [...(s.method === 'dec' ? net.encoder : net.model).trainableWeights.map((w) => w.read() as tf.Variable), mu];
  let run: Run | undefined;
  try {
    setModelWeights(net, prior ? prior.weights : source.weights, prior ? 'resume state' : 'source checkpoint');
    const rawStats = useDebiasedStats(net, source);
    run = new Run(s, { net, both, optimizer, mu, vars, images, d, labels, signal, onProgress, onCheckpoint, rawStats, identity });
    return await run.go(prior, source);
  } finally {
    run?.dispose();
    // `both` shares the model's layers: disposing the model frees them all.
    net.model.dispose();
    optimizer.dispose();
    mu.dispose();
  }
}

/** What a fine-tune's states record of its images and source, to refuse a resume on others. */
interface Identity {
  readonly imagesSha256: string;
  readonly sourceSha256: string;
}

function checkResumable(m: ClusterStateMeta, s: Settings, n: number, d: number, id: Identity, warn: (message: string) => void): void {
  const want: [Exclude<keyof ClusterStateMeta, 'initial'>, string | number][] = [
    ['method', s.method],
    ['k', s.k],
    ['gamma', s.gamma],
    ['updateInterval', s.updateInterval],
    ['batchSize', s.batchSize],
    ['learningRate', s.learningRate],
    ['seed', s.seed],
    ['n', n],
    ['d', d],
  ];
  for (const [key, value] of want) {
    if (m[key] !== value) throw new ModelError('CHECKPOINT_MISMATCH', `resume state: ${key} is ${m[key]}, this fine-tune has ${value}`);
  }
  // Same n is not the same images: a state of another set would train on with its stale target P.
  const what = [
    ['images', 'imagesSha256', 'resume only on the images it was fine-tuned on'],
    ["source checkpoint's weights", 'sourceSha256', 'resume only from the source checkpoint it started from'],
  ] as const;
  const unchecked: string[] = [];
  for (const [name, key, hint] of what) {
    const saved = m[key];
    if (saved === undefined) unchecked.push(name);
    else if (saved !== id[key])
      throw new ModelError(
        'CHECKPOINT_MISMATCH',
        `resume state: was taken with other ${name} (sha256 ${saved.slice(0, 12)}…, this fine-tune's are ${id[key].slice(0, 12)}…); ${hint}`,
      );
  }
  if (unchecked.length > 0)
    warn(
      `resume state: records no sha256 of the ${unchecked.join(' or the ')} (written by an older cvc); resuming unchecked, so it must come from this fine-tune's own images and source`,
    );
}

function setModelWeights(net: Autoencoder, list: readonly NamedArray[], what: string): void {
  const byName = new Map(list.map((a) => [a.name, a]));
  for (const w of net.model.weights) {
    const a = byName.get(w.originalName);
    if (!a) throw new ModelError('CHECKPOINT_MISMATCH', `${what}: no value for weight ${w.originalName}`);
    if (a.shape.length !== w.shape.length || a.shape.some((x, i) => x !== w.shape[i])) {
      throw new ModelError('CHECKPOINT_MISMATCH', `${what}: weight ${w.originalName} has shape [${a.shape.join(',')}], the model needs [${w.shape.join(',')}]`);
    }
    const bad = a.values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0)
      throw new ModelError('CHECKPOINT_CORRUPT', `${what}: weight ${w.originalName} holds ${a.values[bad]} (value ${bad}); it cannot be fine-tuned`);
    writeTensor(w, tf.tensor(a.values, [...a.shape], 'float32'));
  }
}

/** Writes `t` into a variable and frees `t` (the variable keeps its own reference to the values). */
function writeTensor(v: { write(t: tf.Tensor): unknown } | tf.Variable, t: tf.Tensor): void {
  if (v instanceof tf.Variable) v.assign(t);
  else v.write(t);
  t.dispose();
}

const isStat = (name: string): boolean => name.endsWith('/moving_mean') || name.endsWith('/moving_variance');

/**
 * Writes the zero-debiased batch-norm moving statistics into the model (as
 * FoldTrainer does for evaluation and export) and returns the raw values by
 * name, which the states the fine-tune hands out carry instead.
 */
function useDebiasedStats(net: Autoencoder, source: TrainingState): Map<string, NamedArray> {
  const raw = new Map<string, NamedArray>();
  for (const a of source.weights) if (isStat(a.name)) raw.set(a.name, a);
  if (!source.config.bnDebias || source.bnSteps === 0) return raw;
  for (const layer of net.model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const c = Math.pow(Number(layer.getConfig()['momentum']), source.bnSteps);
    if (c < 1e-12) continue;
    for (const v of layer.weights) {
      const a = raw.get(v.originalName);
      if (!a) continue;
      const isMean = v.originalName.endsWith('/moving_mean');
      writeTensor(
        v,
        tf.tidy(() => {
          const t = tf.tensor(a.values, [...a.shape], 'float32');
          return isMean ? tf.div(t, 1 - c) : tf.relu(tf.div(tf.sub(t, c), 1 - c));
        }),
      );
    }
  }
  return raw;
}

/** Student-t soft assignment (alpha = 1) of codes z (b x d) to centres mu (k x d), as dec-math's softAssignment. */
export function softAssignmentTensor(z: tf.Tensor2D, mu: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const d2 = tf.sum(tf.square(tf.sub(tf.expandDims(z, 1), tf.expandDims(mu, 0))), 2);
    const q = tf.reciprocal(tf.add(1, d2));
    return tf.div<tf.Tensor2D>(q, tf.sum(q, 1, true));
  });
}

/** KL(P‖Q) per row, averaged over rows, p and q clipped to [1e-7, 1] (Keras' kld; dec-math's klDivergence). */
export function klDivergenceTensor(p: tf.Tensor2D, q: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const pc = tf.clipByValue(p, KL_EPSILON, 1);
    const qc = tf.clipByValue(q, KL_EPSILON, 1);
    return tf.mean<tf.Scalar>(tf.sum(tf.mul(pc, tf.log(tf.div(pc, qc))), 1));
  });
}

interface Parts {
  readonly net: Autoencoder;
  /** The autoencoder with two outputs: the code and the reconstruction. */
  readonly both: tf.LayersModel;
  readonly optimizer: tf.AdamOptimizer;
  readonly mu: tf.Variable;
  readonly vars: tf.Variable[];
  readonly images: ImageSet;
  readonly d: number;
  readonly labels: ArrayLike<number> | undefined;
  readonly signal: AbortSignal | undefined;
  readonly onProgress: FineTuneOptions['onProgress'];
  readonly onCheckpoint: FineTuneOptions['onCheckpoint'];
  readonly rawStats: Map<string, NamedArray>;
  readonly identity: Identity | null;
}

/** What one refresh of the target computed over the whole set. */
interface Refresh {
  readonly codes: Float32Array;
  readonly q: Float64Array;
  readonly assignments: Int32Array;
  readonly confidence: Float32Array;
}

/** One fine-tune's loop state. */
class Run {
  private iteration = 0;
  private refreshes = 0;
  private secondsBefore = 0;
  private initial: ClusterScores | null = null;
  private last: Int32Array = new Int32Array(0);
  private target: Float32Array = new Float32Array(0);
  /** Sums of (loss, cluster loss, reconstruction loss) x batch size since the last report, and the images they cover. */
  private sums: tf.Tensor1D | null = null;
  private seen = 0;
  private orderPass = -1;
  private order: Int32Array = new Int32Array(0);
  private readonly t0 = performance.now();

  constructor(
    private readonly s: Settings,
    private readonly p: Parts,
  ) {}

  async go(prior: ClusterState | null, source: TrainingState): Promise<FineTuneResult> {
    const { s } = this;
    let fresh: Refresh | null = null;
    let stop: StopReason | null = null;
    if (prior) {
      // The state was taken right after a refresh: the next batch follows.
      await this.restore(prior);
      if (this.iteration >= s.maxIterations) ({ refresh: fresh, stop } = await this.refresh());
    } else {
      fresh = await this.start();
      if (s.maxIterations === 0) stop = 'max-iterations';
    }
    while (!stop) {
      this.abortCheck();
      await this.trainBatch();
      if (this.iteration % s.updateInterval === 0 || this.iteration >= s.maxIterations) ({ refresh: fresh, stop } = await this.refresh());
    }
    if (!fresh) throw new Error('unreachable: the fine-tune stopped without a refresh');
    const finalScores = this.scores(fresh.assignments);
    return {
      assignments: fresh.assignments,
      confidence: fresh.confidence,
      codes: fresh.codes,
      d: this.p.d,
      centres: Float32Array.from(this.p.mu.dataSync() as Float32Array),
      iterations: this.iteration,
      stopReason: stop,
      ...(this.initial ? { initial: this.initial } : {}),
      ...(finalScores ? { final: finalScores } : {}),
      state: {
        config: source.config,
        epochsDone: source.epochsDone,
        bnSteps: source.bnSteps,
        history: source.history,
        best: null,
        weights: this.weights(),
        optimizer: [],
      },
    };
  }

  /** First refresh: codes, k-means centres, the first target; reports the k-means scores. */
  private async start(): Promise<Refresh> {
    const { s, p } = this;
    const n = p.images.count;
    const withRecon = s.method !== 'dec';
    const pass = await this.forward(withRecon ? Math.min(n, s.evalBatchSize) : 0);
    this.checkFinite("the source encoder's codes", pass.codes, 'the source checkpoint holds NaN or infinite weights, or the images do');
    const km = kmeans({ data: pass.codes, n, d: p.d }, { k: s.k, nInit: s.kmeansInit, seed: deriveSeed(s.seed, 0xc1a5) });
    writeTensor(p.mu, tf.tensor2d(Float32Array.from(km.centers), [s.k, p.d]));
    const q = softAssignment(pass.codes, km.centers, n, p.d, s.k);
    const { labels, confidence } = argmaxRows(q, n, s.k);
    const changed = changedShare(km.labels, labels);
    const target = targetDistribution(q, n, s.k);
    const clusterLoss = klDivergence(target, q, n, s.k);
    this.initial = this.scores(km.labels);
    this.last = km.labels;
    this.target = Float32Array.from(target);
    this.refreshes = 1;
    const reconstructionLoss = withRecon ? pass.recon : 0;
    await this.report({ loss: withRecon ? reconstructionLoss + s.gamma * clusterLoss : clusterLoss, clusterLoss, reconstructionLoss, changed }, this.initial);
    if (s.maxIterations > 0) await this.checkpoint();
    return { codes: pass.codes, q, assignments: labels, confidence };
  }

  private async restore(prior: ClusterState): Promise<void> {
    const { p } = this;
    writeTensor(p.mu, tf.tensor2d(prior.centres, [this.s.k, p.d]));
    if (prior.optimizer.length > 0) {
      checkAdamSlots(p.vars, prior.optimizer, 'resume state');
      // Adam's setWeights matches its slots to variables by position: the state lists them in training order.
      const slots: { name: string; tensor: tf.Tensor }[] = [];
      try {
        for (const a of prior.optimizer) if (!a.name.startsWith(ADAM_POWERS)) slots.push({ name: a.name, tensor: tf.tensor(a.values, [...a.shape], a.dtype) });
        await p.optimizer.setWeights(slots);
      } finally {
        // Adam made its own variables of them (or failed): either way these copies are ours to free.
        for (const slot of slots) slot.tensor.dispose();
      }
      restoreAdamPowers(p.optimizer, prior.optimizer);
    }
    this.iteration = prior.meta.iteration;
    this.refreshes = prior.meta.refreshes;
    this.secondsBefore = prior.meta.seconds;
    this.initial = prior.meta.initial;
    this.last = prior.assignments;
    this.target = prior.target;
  }

  /** A refresh of the target at the current iteration; decides whether to stop. */
  private async refresh(): Promise<{ refresh: Refresh; stop: StopReason | null }> {
    const { s, p } = this;
    const n = p.images.count;
    const pass = await this.forward(0);
    const centres = p.mu.dataSync() as Float32Array;
    const hint = `the fine-tune diverged; try a lower learning rate than ${s.learningRate}`;
    this.checkFinite('the codes', pass.codes, hint);
    this.checkFinite('the cluster centres', centres, hint);
    const q = softAssignment(pass.codes, centres, n, p.d, s.k);
    const { labels, confidence } = argmaxRows(q, n, s.k);
    const changed = changedShare(this.last, labels);
    this.last = labels;
    this.target = Float32Array.from(targetDistribution(q, n, s.k));
    this.refreshes++;
    const losses = await this.takeLosses();
    await this.report({ ...losses, changed }, this.scores(labels));
    const stop = stopDecision({ iteration: this.iteration, changed, tol: s.tol, maxIterations: s.maxIterations });
    if (!stop && (this.refreshes - 1) % s.checkpointEvery === 0) await this.checkpoint();
    return { refresh: { codes: pass.codes, q, assignments: labels, confidence }, stop };
  }

  /** Throws LOSS_NOT_FINITE naming `what`, the iteration and `hint` when `values` holds a NaN or an infinity. */
  private checkFinite(what: string, values: ArrayLike<number>, hint: string): void {
    for (let i = 0; i < values.length; i++) {
      const v = values[i] as number;
      if (!Number.isFinite(v)) {
        const d = this.p.d;
        const where = what.endsWith('centres') ? `centre ${Math.floor(i / d)}` : `image ${Math.floor(i / d)}`;
        throw new ModelError('LOSS_NOT_FINITE', `${what} hold ${v} (${where}) at iteration ${this.iteration}: ${hint}`);
      }
    }
  }

  private scores(assignments: Int32Array): ClusterScores | null {
    const { labels } = this.p;
    if (!labels) return null;
    const sc = scoreClustering(labels, assignments);
    return { acc: sc.accuracy, nmi: sc.nmi, ari: sc.ari };
  }

  private async report(l: { loss: number; clusterLoss: number; reconstructionLoss: number; changed: number }, sc: ClusterScores | null): Promise<void> {
    for (const [what, v] of [
      ['loss', l.loss],
      ['cluster loss', l.clusterLoss],
      ['reconstruction loss', l.reconstructionLoss],
    ] as const) {
      if (!Number.isFinite(v)) throw new ModelError('LOSS_NOT_FINITE', `the fine-tune's ${what} became ${v} by iteration ${this.iteration}`);
    }
    await this.p.onProgress?.({
      iteration: this.iteration,
      maxIterations: this.s.maxIterations,
      ...l,
      ...(sc ? { acc: sc.acc, nmi: sc.nmi, ari: sc.ari } : {}),
      seconds: this.seconds(),
    });
  }

  private seconds(): number {
    return this.secondsBefore + (performance.now() - this.t0) / 1000;
  }

  private async checkpoint(): Promise<void> {
    const { s, p } = this;
    if (!p.onCheckpoint) return;
    const opt = await p.optimizer.getWeights();
    const optimizer: NamedArray[] = opt.map((o) => ({
      name: o.name,
      shape: o.tensor.shape,
      dtype: o.tensor.dtype === 'int32' ? 'int32' : 'float32',
      values: o.tensor.dataSync() as Float32Array | Int32Array,
    }));
    // The iteration count comes as a fresh scalar; the moments are Adam's own variables.
    for (const o of opt) if (!(o.tensor instanceof tf.Variable)) o.tensor.dispose();
    optimizer.push(...adamPowers(p.optimizer));
    const meta: ClusterStateMeta = {
      method: s.method,
      k: s.k,
      gamma: s.gamma,
      updateInterval: s.updateInterval,
      batchSize: s.batchSize,
      learningRate: s.learningRate,
      seed: s.seed,
      n: p.images.count,
      d: p.d,
      iteration: this.iteration,
      refreshes: this.refreshes,
      seconds: this.seconds(),
      initial: this.initial,
      ...(p.identity ?? {}),
    };
    const bytes = encodeClusterState({
      meta,
      weights: this.weights(),
      optimizer,
      centres: Float32Array.from(p.mu.dataSync() as Float32Array),
      assignments: this.last,
      target: this.target,
    });
    await p.onCheckpoint(bytes, this.iteration);
  }

  /** The model's weights by name, with the raw batch-norm statistics (the model holds debiased ones). */
  private weights(): NamedArray[] {
    return this.p.net.model.weights.map((w) => {
      const raw = this.p.rawStats.get(w.originalName);
      if (raw) return raw;
      const t = w.read();
      return { name: w.originalName, shape: t.shape, dtype: 'float32' as const, values: Float32Array.from(t.dataSync() as Float32Array) };
    });
  }

  private abortCheck(): void {
    if (this.p.signal?.aborted === true) {
      throw new ModelError('ABORTED', `the fine-tune was aborted at iteration ${this.iteration} of ${this.s.maxIterations}`, { cause: this.p.signal.reason });
    }
  }

  /**
   * Codes of the whole set in inference mode, yielding between batches, and
   * the mean reconstruction loss of its first batches covering `reconImages`
   * images (a decoder pass costs several encoder passes, so only a sample).
   */
  private async forward(reconImages: number): Promise<{ codes: Float32Array; recon: number }> {
    const { p, s } = this;
    const n = p.images.count;
    const codes = new Float32Array(n * p.d);
    let recon = 0;
    let reconSeen = 0;
    for (let start = 0; start < n; start += s.evalBatchSize) {
      this.abortCheck();
      const size = Math.min(s.evalBatchSize, n - start);
      const withRecon = start < reconImages;
      const [z, r] = tf.tidy((): tf.Tensor[] => {
        const x = batchTensor(p.images, undefined, start, size);
        if (!withRecon) return [p.net.encoder.apply(x, { training: false }) as tf.Tensor];
        const [code, y] = p.both.apply(x, { training: false }) as tf.Tensor[];
        return [code as tf.Tensor, computeLoss(p.net.config.loss, y as tf.Tensor, x).loss];
      });
      if (!z) throw new Error('unreachable: the encoder gave no codes');
      codes.set(z.dataSync(), start * p.d);
      z.dispose();
      if (r) {
        recon += (r.dataSync()[0] as number) * size;
        reconSeen += size;
        r.dispose();
      }
      await yieldToEventLoop();
    }
    return { codes, recon: reconSeen > 0 ? recon / reconSeen : 0 };
  }

  /** The batch order of pass `pass` over the set. */
  private orderOf(pass: number): Int32Array {
    if (pass !== this.orderPass) {
      this.order = permutation(this.p.images.count, createRng(deriveSeed(this.s.seed, 0xdec, pass)));
      this.orderPass = pass;
    }
    return this.order;
  }

  private async trainBatch(): Promise<void> {
    const { s, p } = this;
    const n = p.images.count;
    const perPass = Math.ceil(n / s.batchSize);
    const pass = Math.floor(this.iteration / perPass);
    const start = (this.iteration % perPass) * s.batchSize;
    const size = Math.min(s.batchSize, n - start);
    const order = this.orderOf(pass);
    const k = s.k;
    const pb = new Float32Array(size * k);
    for (let i = 0; i < size; i++) pb.set(this.target.subarray((order[start + i] as number) * k, ((order[start + i] as number) + 1) * k), i * k);
    let parts: tf.Tensor1D | null = null;
    tf.tidy(() => {
      const x = batchTensor(p.images, order, start, size);
      const target = tf.tensor2d(pb, [size, k]);
      p.optimizer.minimize(
        () => {
          let z: tf.Tensor;
          let recon: tf.Scalar | null = null;
          if (s.method === 'dec') z = p.net.encoder.apply(x, { training: false }) as tf.Tensor;
          else {
            const [code, y] = p.both.apply(x, { training: false }) as tf.Tensor[];
            z = code as tf.Tensor;
            recon = computeLoss(p.net.config.loss, y as tf.Tensor, x).loss;
          }
          const kl = klDivergenceTensor(target, softAssignmentTensor(z as tf.Tensor2D, p.mu as tf.Tensor2D));
          const loss = recon ? tf.add<tf.Scalar>(recon, tf.mul(s.gamma, kl)) : kl;
          parts = tf.keep(tf.mul<tf.Tensor1D>(tf.stack([loss, kl, recon ?? tf.scalar(0)]) as tf.Tensor1D, size));
          return loss;
        },
        false,
        p.vars,
      );
    });
    const got = parts as tf.Tensor1D | null;
    if (got) {
      const prev = this.sums;
      this.sums = prev ? tf.add<tf.Tensor1D>(prev, got) : got;
      if (prev) {
        prev.dispose();
        got.dispose();
      }
    }
    this.seen += size;
    this.iteration++;
    // Let timers (the task heartbeat), signals and I/O run between batches.
    await yieldToEventLoop();
  }

  /** Frees the loss sums of an interrupted interval. */
  dispose(): void {
    this.sums?.dispose();
    this.sums = null;
  }

  /** Mean losses over the batches since the last report, and a fresh start. */
  private async takeLosses(): Promise<{ loss: number; clusterLoss: number; reconstructionLoss: number }> {
    const sums = this.sums;
    const seen = this.seen;
    this.sums = null;
    this.seen = 0;
    if (!sums || seen === 0) return { loss: 0, clusterLoss: 0, reconstructionLoss: 0 };
    const [l, c, r] = (await sums.data()) as Float32Array;
    sums.dispose();
    return { loss: (l as number) / seen, clusterLoss: (c as number) / seen, reconstructionLoss: (r as number) / seen };
  }
}

/** Lets timers, signals and I/O run (a macrotask turn) between batches of synchronous backend work. */
function yieldToEventLoop(): Promise<void> {
  return new Promise<void>((r) => setImmediate(r));
}
