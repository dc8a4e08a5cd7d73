import { randomBytes, randomUUID } from 'node:crypto';
import { createRng, CvcError, meanStd, permutation, silentLogger, type Logger } from '@cvc/core';
import { decodeShard, parseManifest, selectImages, type ImageSet } from '@cvc/data';
import { imageGrid, lossCurves } from '@cvc/report';
import { tf } from '@cvc/tfjs-runtime';
import { FoldState, Run, RunState, CheckpointKind, type RunSummary, type AttemptRef, type CheckpointChunk_Header, type EpochMetrics, type FailFoldRequest, type FinishFoldRequest, type FoldProgress, type RunEvent, type RunSpec, type StartAttemptRequest, type StartAttemptResponse } from '@cvc/proto';
import { batchTensor, FoldTrainer, MODEL_SHAPES } from '@cvc/model';
import { createDatasetCatalog, layout, StorageError, type DatasetCatalog, type ObjectStore } from '@cvc/storage';
import type { DocStore, FoldTask, TaskQueue } from '@cvc/messaging';
import { CoordinatorError } from './errors.js';
import { decodeDoc, FINAL_FOLD_STATES, FINAL_RUN_STATES, resolveSpec, runKey, type RunDoc } from './run-doc.js';

export interface CoordinatorDeps {
  readonly store: ObjectStore;
  readonly queue: TaskQueue;
  readonly runs: DocStore<RunDoc>;
  readonly logger?: Logger;
  /** Milliseconds since the epoch (injected for tests). */
  readonly now?: () => number;
  /** Largest checkpoint accepted, in bytes (default 512 MiB). */
  readonly maxCheckpointBytes?: number;
  /** Told about every state change and event (metrics). */
  readonly observer?: CoordinatorObserver;
}

/** Hooks for metrics; every method is optional. */
export interface CoordinatorObserver {
  runChanged?(run: Run, reason: string): void;
  redelivery?(): void;
  checkpointStored?(bytes: number): void;
  foldFailed?(): void;
}

/**
 * The coordinator's logic: validates and records runs, enqueues one task per
 * fold, takes workers' attempts, reports and checkpoints, and finalises a
 * run (summary and the best fold's encoder) once every fold has ended. All
 * state lives in the KV bucket and object storage, so a restart loses nothing.
 */
export class Coordinator {
  private readonly store: ObjectStore;
  private readonly queue: TaskQueue;
  private readonly runs: DocStore<RunDoc>;
  private readonly catalog: DatasetCatalog;
  private readonly logger: Logger;
  private readonly now: () => number;
  readonly maxCheckpointBytes: number;
  private readonly observer: CoordinatorObserver;

  constructor(deps: CoordinatorDeps) {
    this.store = deps.store;
    this.queue = deps.queue;
    this.runs = deps.runs;
    this.catalog = createDatasetCatalog(deps.store);
    this.logger = deps.logger ?? silentLogger;
    this.now = deps.now ?? Date.now;
    this.maxCheckpointBytes = deps.maxCheckpointBytes ?? 512 * 1024 * 1024;
    this.observer = deps.observer ?? {};
  }

  private checkRunId(runId: string): void {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(runId)) throw new CoordinatorError('INVALID_ARGUMENT', `run id ${JSON.stringify(runId)} is malformed`);
  }

  private async load(runId: string): Promise<RunDoc> {
    this.checkRunId(runId);
    const v = await this.runs.get(runKey(runId));
    if (!v) throw new CoordinatorError('NOT_FOUND', `run ${runId} does not exist`);
    return decodeDoc(v.value);
  }

  /** Applies `fn` with compare-and-set (it may run more than once, so it must be pure). */
  private async mutate(runId: string, reason: string, fn: (doc: RunDoc) => RunDoc): Promise<RunDoc> {
    this.checkRunId(runId);
    let value: RunDoc;
    try {
      ({ value } = await this.runs.update(runKey(runId), (cur) => {
        const doc = decodeDoc(cur);
        const next = fn(doc);
        const reported = next.reported ?? doc.reported;
        const manifest = next.manifest ?? doc.manifest;
        return { run: { ...next.run, updatedAtMs: this.now() }, tokens: next.tokens, ...(reported ? { reported } : {}), ...(manifest ? { manifest } : {}) };
      }));
    } catch (err) {
      if (err instanceof CvcError && err.code === 'NOT_FOUND') throw new CoordinatorError('NOT_FOUND', `run ${runId} does not exist`);
      throw err;
    }
    const doc = decodeDoc(value);
    this.observer.runChanged?.(doc.run, reason);
    return doc;
  }

  /** Validates a spec against the models and the dataset catalog, records the run and enqueues its folds. */
  async submitRun(input: RunSpec | undefined): Promise<Run> {
    const spec = resolveSpec(input);
    let imp;
    try {
      imp = await this.catalog.find(spec.dataset, { folds: spec.folds, ...(spec.datasetVersion ? { version: spec.datasetVersion } : {}) });
    } catch (err) {
      if (err instanceof StorageError && (err.code === 'DATASET_NOT_IMPORTED' || err.code === 'FOLDS_MISMATCH')) {
        throw new CoordinatorError(err.code === 'DATASET_NOT_IMPORTED' ? 'NOT_FOUND' : 'FAILED_PRECONDITION', err.message);
      }
      throw err;
    }
    const shape = MODEL_SHAPES[spec.model];
    if (imp.height !== shape.height || imp.width !== shape.width || imp.channels !== shape.channels) {
      throw new CoordinatorError('INVALID_ARGUMENT', `model ${spec.model} takes ${shape.height}x${shape.width}x${shape.channels} images; dataset ${spec.dataset} has ${imp.height}x${imp.width}x${imp.channels}`);
    }
    const t = new Date(this.now());
    const stamp = t.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const id = `${spec.name || spec.model}-${stamp}-${randomBytes(3).toString('hex')}`;
    const run = Run.fromPartial({
      id,
      spec: { ...spec, datasetVersion: imp.version },
      state: RunState.RUN_STATE_PENDING,
      datasetVersion: imp.version,
      createdAtMs: this.now(),
      updatedAtMs: this.now(),
      folds: Array.from({ length: spec.folds }, (_, fold) => ({ fold, state: FoldState.FOLD_STATE_PENDING })),
    });
    await this.runs.create(runKey(id), { run, tokens: new Array<string>(spec.folds).fill(''), manifest: imp.manifest });
    for (let fold = 0; fold < spec.folds; fold++) await this.queue.enqueue({ runId: id, fold });
    this.logger.info('run submitted', { run: id, dataset: spec.dataset, version: imp.version, folds: spec.folds });
    this.observer.runChanged?.(run, 'submitted');
    return run;
  }

  async getRun(runId: string): Promise<Run> {
    return (await this.load(runId)).run;
  }

  async listRuns(): Promise<Run[]> {
    const out: Run[] = [];
    for (const k of await this.runs.keys()) {
      const v = await this.runs.get(k);
      if (v) out.push(decodeDoc(v.value).run);
    }
    return out.sort((a, b) => b.createdAtMs - a.createdAtMs);
  }

  async cancelRun(runId: string): Promise<Run> {
    const doc = await this.mutate(runId, 'cancelled', (d) => {
      if (FINAL_RUN_STATES.includes(d.run.state)) return d;
      return {
        tokens: d.tokens.map(() => ''),
        run: {
          ...d.run,
          state: RunState.RUN_STATE_CANCELLED,
          folds: d.run.folds.map((f) => (FINAL_FOLD_STATES.includes(f.state) ? f : { ...f, state: FoldState.FOLD_STATE_CANCELLED })),
        },
      };
    });
    return doc.run;
  }

  /** Sends the run now and after every change until it ends or `signal` aborts. */
  async watchRun(runId: string, send: (e: RunEvent) => void, signal: AbortSignal): Promise<void> {
    const first = await this.load(runId);
    send({ run: first.run, reason: 'current' });
    if (FINAL_RUN_STATES.includes(first.run.state)) return;
    await new Promise<void>((resolve, reject) => {
      let stop: (() => void) | undefined;
      const done = (): void => {
        stop?.();
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
      this.runs
        .watch(runKey(runId), (value) => {
          const run = decodeDoc(value).run;
          send({ run, reason: 'update' });
          if (FINAL_RUN_STATES.includes(run.state)) done();
        })
        .then((s) => {
          stop = s;
          if (signal.aborted) s();
        }, reject);
    });
  }

  /** Begins an attempt at a fold and hands out its token. */
  async startAttempt(req: StartAttemptRequest): Promise<StartAttemptResponse> {
    const cur = await this.load(req.runId);
    const f = cur.run.folds[req.fold];
    if (!f) throw new CoordinatorError('INVALID_ARGUMENT', `run ${req.runId} has no fold ${req.fold}`);
    const skip = (reason: string): StartAttemptResponse => ({ proceed: false, token: '', datasetVersion: '', manifest: '', resumeCheckpoint: '', reason });
    if (FINAL_RUN_STATES.includes(cur.run.state)) return skip(`run is ${RunState[cur.run.state]}`);
    if (FINAL_FOLD_STATES.includes(f.state)) return skip(`fold ${req.fold} is ${FoldState[f.state]}`);
    const token = randomUUID();
    if (req.delivery > 1) this.observer.redelivery?.();
    const doc = await this.mutate(req.runId, `fold ${req.fold} started`, (d) => {
      const tokens = [...d.tokens];
      tokens[req.fold] = token;
      return {
        tokens,
        run: {
          ...d.run,
          state: RunState.RUN_STATE_RUNNING,
          folds: d.run.folds.map((x) =>
            x.fold === req.fold ? { ...x, state: FoldState.FOLD_STATE_RUNNING, attempts: x.attempts + 1, worker: req.worker, error: '', resumedFromEpoch: x.lastCheckpoint ? x.lastCheckpointEpoch : 0 } : x,
          ),
        },
      };
    });
    const fold = doc.run.folds[req.fold];
    // Runs submitted before the manifest was kept in the run document look it up in the catalog.
    const manifest = doc.manifest ?? (await this.catalog.find(doc.run.spec?.dataset ?? '', { folds: doc.run.folds.length, version: doc.run.datasetVersion })).manifest;
    this.logger.info('attempt started', { run: req.runId, fold: req.fold, worker: req.worker, delivery: req.delivery, resume: fold?.lastCheckpointEpoch ?? 0 });
    return { proceed: true, token, ...(doc.run.spec ? { spec: doc.run.spec } : {}), datasetVersion: doc.run.datasetVersion, manifest, resumeCheckpoint: fold?.lastCheckpoint ?? '', reason: '' };
  }

  /** Throws unless `a` is the fold's current attempt (and the run still wants it). */
  private checkToken(doc: RunDoc, a: AttemptRef | undefined): number {
    if (!a) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt is required');
    const f = doc.run.folds[a.fold];
    if (!f) throw new CoordinatorError('INVALID_ARGUMENT', `run ${a.runId} has no fold ${a.fold}`);
    if (doc.run.state === RunState.RUN_STATE_CANCELLED) throw new CoordinatorError('CANCELLED', `run ${a.runId} was cancelled`);
    if (!a.token || doc.tokens[a.fold] !== a.token) {
      throw new CoordinatorError('FAILED_PRECONDITION', `stale attempt token for run ${a.runId} fold ${a.fold}: another attempt owns this fold`);
    }
    return a.fold;
  }

  async reportEpoch(a: AttemptRef | undefined, m: EpochMetrics | undefined): Promise<void> {
    if (!a || !m) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt and metrics are required');
    if (!Number.isFinite(m.loss) || !Number.isFinite(m.valLoss) || m.epoch < 1) {
      throw new CoordinatorError('INVALID_ARGUMENT', `epoch report must have a positive epoch and finite losses (epoch ${m.epoch}, loss ${m.loss}, val_loss ${m.valLoss})`);
    }
    await this.mutate(a.runId, `fold ${a.fold} epoch ${m.epoch}`, (d) => {
      const fold = this.checkToken(d, a);
      // A retry of a report this attempt already made (its answer was lost in a coordinator restart): nothing to count again.
      const key = `${a.token}:${m.epoch}`;
      if (d.reported?.[fold] === key) return d;
      const reported = [...(d.reported ?? [])];
      reported[fold] = key;
      return {
        reported,
        tokens: d.tokens,
        run: {
          ...d.run,
          folds: d.run.folds.map((x) =>
            x.fold === fold ? { ...x, epochReports: x.epochReports + 1, history: [...x.history.filter((h) => h.epoch !== m.epoch), m].sort((p, q) => p.epoch - q.epoch) } : x,
          ),
        },
      };
    });
  }

  /**
   * Keeps the latest progress inside an epoch in the fold's status (not its
   * history), so watchers see images done, images/s and an ETA between epoch
   * reports. The coordinator stamps the time with its own clock.
   */
  async reportProgress(a: AttemptRef | undefined, p: FoldProgress | undefined): Promise<void> {
    if (!a || !p) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt and progress are required');
    for (const [field, v] of [['images_per_sec', p.imagesPerSec], ['loss', p.loss], ['eta_seconds', p.etaSeconds]] as const) {
      if (!Number.isFinite(v) || v < 0) throw new CoordinatorError('INVALID_ARGUMENT', `progress.${field} must be a finite number >= 0, got ${v}`);
    }
    if (p.images > p.totalImages || p.epoch < 1) throw new CoordinatorError('INVALID_ARGUMENT', `progress must have epoch >= 1 and images <= total_images (epoch ${p.epoch}, ${p.images}/${p.totalImages})`);
    await this.mutate(a.runId, `fold ${a.fold} progress`, (d) => {
      const fold = this.checkToken(d, a);
      const progress = { ...p, updatedAtMs: this.now() };
      return { ...d, run: { ...d.run, folds: d.run.folds.map((x) => (x.fold === fold ? { ...x, progress } : x)) } };
    });
  }

  /**
   * Streams a checkpoint into object storage, checking the attempt token,
   * the size cap and the sha256 sent at the end. On a mismatch nothing is
   * stored and the fold keeps its previous checkpoint.
   */
  async uploadCheckpoint(header: CheckpointChunk_Header | undefined, data: AsyncIterable<Uint8Array>, sha256: () => string | undefined): Promise<{ key: string; size: number }> {
    if (!header?.attempt) throw new CoordinatorError('INVALID_ARGUMENT', 'the first message of a checkpoint upload must carry a header with the attempt');
    const a = header.attempt;
    this.checkToken(await this.load(a.runId), a);
    if (header.size > this.maxCheckpointBytes) {
      throw new CoordinatorError('RESOURCE_EXHAUSTED', `checkpoint of ${header.size} bytes exceeds the limit of ${this.maxCheckpointBytes}`);
    }
    const key = header.kind === CheckpointKind.CHECKPOINT_KIND_BEST ? layout.foldBest(a.runId, a.fold) : layout.foldCheckpoint(a.runId, a.fold, header.epoch);
    let seen = 0;
    const max = this.maxCheckpointBytes;
    async function* capped(): AsyncGenerator<Uint8Array> {
      for await (const c of data) {
        seen += c.length;
        if (seen > max) throw new CoordinatorError('RESOURCE_EXHAUSTED', `checkpoint exceeds the limit of ${max} bytes`);
        yield c;
      }
    }
    let put;
    try {
      put = await this.store.put(key, capped(), { expectSha256: sha256 });
    } catch (err) {
      if (err instanceof StorageError && err.code === 'CHECKSUM_MISMATCH') throw new CoordinatorError('DATA_LOSS', `checkpoint for run ${a.runId} fold ${a.fold}: ${err.message}`);
      throw err;
    }
    if (header.size > 0 && put.bytes !== header.size) {
      await this.store.remove(key).catch(() => undefined);
      throw new CoordinatorError('DATA_LOSS', `checkpoint announced ${header.size} bytes but ${put.bytes} arrived; it was discarded`);
    }
    this.observer.checkpointStored?.(put.bytes);
    await this.mutate(a.runId, `fold ${a.fold} checkpoint`, (d) => {
      const fold = this.checkToken(d, a);
      return {
        tokens: d.tokens,
        run: {
          ...d.run,
          folds: d.run.folds.map((x) => {
            if (x.fold !== fold) return x;
            if (header.kind === CheckpointKind.CHECKPOINT_KIND_BEST) return { ...x, bestCheckpoint: key };
            return header.epoch >= x.lastCheckpointEpoch ? { ...x, lastCheckpoint: key, lastCheckpointEpoch: header.epoch } : x;
          }),
        },
      };
    });
    return { key, size: put.bytes };
  }

  async finishFold(req: FinishFoldRequest): Promise<void> {
    const a = req.attempt;
    if (!a) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt is required');
    const doc = await this.mutate(a.runId, `fold ${a.fold} finished`, (d) => {
      const fold = this.checkToken(d, a);
      const tokens = [...d.tokens];
      tokens[fold] = '';
      return {
        tokens,
        run: {
          ...d.run,
          folds: d.run.folds.map((x) =>
            x.fold === fold ? { ...x, state: FoldState.FOLD_STATE_SUCCEEDED, bestEpoch: req.bestEpoch, ...(req.train ? { train: req.train } : {}), ...(req.val ? { val: req.val } : {}), ...(req.test ? { test: req.test } : {}) } : x,
          ),
        },
      };
    });
    await this.maybeFinalize(doc);
  }

  async failFold(req: FailFoldRequest): Promise<void> {
    const a = req.attempt;
    if (!a) throw new CoordinatorError('INVALID_ARGUMENT', 'attempt is required');
    const doc = await this.mutate(a.runId, `fold ${a.fold} failed`, (d) => {
      const fold = this.checkToken(d, a);
      const tokens = [...d.tokens];
      tokens[fold] = '';
      return {
        tokens,
        run: { ...d.run, folds: d.run.folds.map((x) => (x.fold === fold ? { ...x, state: req.final ? FoldState.FOLD_STATE_FAILED : FoldState.FOLD_STATE_PENDING, error: req.error } : x)) },
      };
    });
    if (req.final) {
      this.observer.foldFailed?.();
      await this.maybeFinalize(doc);
    }
  }

  /** A task ran out of deliveries (its worker died each time): mark the fold failed. */
  async onTaskGivenUp(task: FoldTask, deliveries: number): Promise<void> {
    const before = (await this.load(task.runId)).run.folds[task.fold];
    if (!before || FINAL_FOLD_STATES.includes(before.state)) return;
    const doc = await this.mutate(task.runId, `fold ${task.fold} gave up`, (d) => {
      const f = d.run.folds[task.fold];
      if (!f || FINAL_FOLD_STATES.includes(f.state)) return d;
      const tokens = [...d.tokens];
      tokens[task.fold] = '';
      const error = f.error ? `${f.error} (gave up after ${deliveries} deliveries)` : `gave up after ${deliveries} deliveries without a result (worker lost?)`;
      return { tokens, run: { ...d.run, folds: d.run.folds.map((x) => (x.fold === task.fold ? { ...x, state: FoldState.FOLD_STATE_FAILED, error } : x)) } };
    });
    this.observer.foldFailed?.();
    await this.maybeFinalize(doc);
  }

  /** Once every fold has ended: the summary, the best fold's encoder, the final state. */
  private async maybeFinalize(doc: RunDoc): Promise<void> {
    const run = doc.run;
    if (FINAL_RUN_STATES.includes(run.state) || !run.folds.every((f) => FINAL_FOLD_STATES.includes(f.state))) return;
    const ok = run.folds.filter((f) => f.state === FoldState.FOLD_STATE_SUCCEEDED && f.val);
    let summary: RunSummary | undefined;
    let error = '';
    if (ok.length > 0) {
      const best = ok.reduce((b, f) => ((f.val?.loss ?? Infinity) < (b.val?.loss ?? Infinity) ? f : b));
      let encoder = '';
      try {
        encoder = await this.exportArtifacts(run, best.bestCheckpoint);
      } catch (err) {
        error = `encoder export or report failed: ${(err as Error).message}`;
        this.logger.error('encoder export or report failed', { run: run.id, error: (err as Error).message });
      }
      const ms = (pick: (f: (typeof ok)[number]) => number): { mean: number; std: number } => {
        const m = meanStd(ok.map(pick));
        return { mean: m.mean, std: m.std };
      };
      summary = {
        trainLoss: ms((f) => f.train?.loss ?? NaN),
        valLoss: ms((f) => f.val?.loss ?? NaN),
        testLoss: ms((f) => f.test?.loss ?? NaN),
        bestFold: best.fold,
        encoder,
      };
      await this.store.put(layout.summary(run.id), new TextEncoder().encode(JSON.stringify(Run.toJSON({ ...run, summary }), null, 2)), { contentType: 'application/json' });
    }
    const failed = run.folds.filter((f) => f.state === FoldState.FOLD_STATE_FAILED);
    if (failed.length > 0) error = [error, ...failed.map((f) => `fold ${f.fold}: ${f.error}`)].filter(Boolean).join('; ');
    await this.mutate(run.id, 'finished', (d) => ({
      tokens: d.tokens,
      run: { ...d.run, state: failed.length > 0 || ok.length === 0 ? RunState.RUN_STATE_FAILED : RunState.RUN_STATE_SUCCEEDED, ...(summary ? { summary } : {}), error },
    }));
    this.logger.info('run finished', { run: run.id, failedFolds: failed.length });
  }

  /**
   * The best fold's encoder (runs/RUN/encoder/) and the report pictures
   * (runs/RUN/report/): 25 test images and their reconstructions by the best
   * fold, like the seed's figures, and every fold's loss curves.
   */
  private async exportArtifacts(run: Run, bestCheckpoint: string): Promise<string> {
    if (!bestCheckpoint) throw new Error('the best fold uploaded no best checkpoint');
    const trainer = await FoldTrainer.resume(await this.store.getBytes(bestCheckpoint), bestCheckpoint);
    try {
      const { modelJson, weights } = await trainer.exportEncoder();
      const prefix = layout.encoderPrefix(run.id);
      await this.store.put(`${prefix}/model.json`, new TextEncoder().encode(modelJson), { contentType: 'application/json' });
      await this.store.put(`${prefix}/weights.bin`, weights);

      const report = layout.reportPrefix(run.id);
      const test = await this.testImages(run, 25);
      const recon = trainer.withInferenceStats(() =>
        tf.tidy(() => (trainer.net.model.predict(batchTensor(test, undefined, 0, test.count)) as tf.Tensor).dataSync() as Float32Array),
      );
      const png = { contentType: 'image/png' };
      await this.store.put(`${report}/originals.png`, imageGrid(test.images, test.count, test.height, test.width, test.channels), png);
      await this.store.put(`${report}/reconstructions.png`, imageGrid(recon, test.count, test.height, test.width, test.channels), png);
      const curves = run.folds.map((f) => ({ fold: f.fold, train: f.history.map((h) => h.loss), val: f.history.map((h) => h.valLoss) }));
      await this.store.put(`${report}/loss-curves.png`, lossCurves(curves, { title: `${run.spec?.model ?? ''} ${run.spec?.dataset ?? ''}: loss per fold` }), png);
      return prefix;
    } finally {
      trainer.dispose();
    }
  }

  /** `count` test images of the run's dataset, chosen with a fixed seed (the same for every run of a dataset version). */
  private async testImages(run: Run, count: number): Promise<ImageSet> {
    const imp = await this.catalog.find(run.spec?.dataset ?? '', { folds: run.folds.length, version: run.datasetVersion });
    const manifest = parseManifest(new TextDecoder().decode(await this.store.getBytes(imp.manifest)), imp.manifest);
    const entry = manifest.shards.find((e) => e.split === 'test');
    if (!entry) throw new Error(`dataset version ${run.datasetVersion} has no test shard`);
    const set = decodeShard(await this.store.getBytes(imp.manifest.replace(/manifest\.json$/, entry.name)), entry.name).set;
    const pick = permutation(set.count, createRng(1)).subarray(0, Math.min(count, set.count));
    return selectImages(set, pick);
  }

  /** The best checkpoint of a fold, for download. */
  async openBestCheckpoint(runId: string, fold: number): Promise<{ key: string; size: number; stream: AsyncIterable<Uint8Array> }> {
    const doc = await this.load(runId);
    const f = doc.run.folds[fold];
    if (!f) throw new CoordinatorError('INVALID_ARGUMENT', `run ${runId} has no fold ${fold}`);
    if (!f.bestCheckpoint) throw new CoordinatorError('FAILED_PRECONDITION', `run ${runId} fold ${fold} has no best checkpoint yet (state ${FoldState[f.state]})`);
    const st = await this.store.stat(f.bestCheckpoint);
    if (!st) throw new CoordinatorError('DATA_LOSS', `checkpoint ${f.bestCheckpoint} is missing from storage`);
    return { key: f.bestCheckpoint, size: st.size, stream: await this.store.getStream(f.bestCheckpoint) };
  }
}
