import { createRng, permutation, throwIfAborted } from '@cvc/core';
import { decodeShard, readManifest, selectImages, type ImageSet } from '@cvc/data';
import { batchTensor, FoldTrainer } from '@cvc/model';
import type { Run } from '@cvc/proto';
import { imageGrid, lossCurves } from '@cvc/report';
import { layout, type DatasetCatalog, type ObjectStore } from '@cvc/storage';
import { tf } from '@cvc/tfjs-runtime';
import { FinalizeError } from './errors.js';

/** What an artifact export gets: the run (every fold ended), the best fold's checkpoint, where to read and write. */
export interface ExportInput {
  readonly run: Run;
  /** Object key of the best fold's best checkpoint ('' when it uploaded none). */
  readonly bestCheckpoint: string;
  readonly store: ObjectStore;
  readonly catalog: DatasetCatalog;
  /** Aborted when the coordinator shuts down; the export then stops at its next step. */
  readonly signal: AbortSignal;
}

/**
 * Writes a finished run's artifacts to object storage and returns the
 * encoder's key prefix. Must be idempotent: it may run again after a crash,
 * and writes the same keys each time.
 */
export type ArtifactExporter = (input: ExportInput) => Promise<string>;

/**
 * The real export: the best fold's encoder (runs/RUN/encoder/model.json and
 * weights.bin) and the report pictures (runs/RUN/report/): 25 test images and
 * their reconstructions by the best fold, like the seed's figures, and every
 * fold's loss curves.
 */
export const exportRunArtifacts: ArtifactExporter = async ({ run, bestCheckpoint, store, catalog, signal }) => {
  if (!bestCheckpoint) throw new FinalizeError('NO_BEST_CHECKPOINT', `run ${run.id}: the best fold uploaded no best checkpoint`);
  const trainer = await FoldTrainer.resume(await store.getBytes(bestCheckpoint), bestCheckpoint);
  try {
    throwIfAborted(signal, `the export of run ${run.id}`);
    const { modelJson, weights } = await trainer.exportEncoder();
    const prefix = layout.encoderPrefix(run.id);
    await store.put(`${prefix}/model.json`, new TextEncoder().encode(modelJson), { contentType: 'application/json' });
    await store.put(`${prefix}/weights.bin`, weights);
    throwIfAborted(signal, `the export of run ${run.id}`);

    const report = layout.reportPrefix(run.id);
    const test = await testImages(store, catalog, run, 25);
    const recon = trainer.withInferenceStats(() =>
      tf.tidy(() => (trainer.net.model.predict(batchTensor(test, undefined, 0, test.count)) as tf.Tensor).dataSync() as Float32Array),
    );
    const png = { contentType: 'image/png' };
    await store.put(`${report}/originals.png`, imageGrid(test.images, test.count, test.height, test.width, test.channels), png);
    await store.put(`${report}/reconstructions.png`, imageGrid(recon, test.count, test.height, test.width, test.channels), png);
    const curves = run.folds.map((f) => ({ fold: f.fold, train: f.history.map((h) => h.loss), val: f.history.map((h) => h.valLoss) }));
    await store.put(`${report}/loss-curves.png`, lossCurves(curves, { title: `${run.spec?.model ?? ''} ${run.spec?.dataset ?? ''}: loss per fold` }), png);
    return prefix;
  } finally {
    trainer.dispose();
  }
};

/** `count` test images of the run's dataset, chosen with a fixed seed (the same for every run of a dataset version). */
async function testImages(store: ObjectStore, catalog: DatasetCatalog, run: Run, count: number): Promise<ImageSet> {
  const imp = await catalog.find(run.spec?.dataset ?? '', { folds: run.folds.length, version: run.datasetVersion });
  const manifest = await readManifest(store, imp.manifest);
  const entry = manifest.shards.find((e) => e.split === 'test');
  if (!entry) throw new FinalizeError('NO_TEST_SHARD', `dataset version ${run.datasetVersion} has no test shard`);
  const set = decodeShard(await store.getBytes(imp.manifest.replace(/manifest\.json$/, entry.name)), entry.name).set;
  const pick = permutation(set.count, createRng(1)).subarray(0, Math.min(count, set.count));
  return selectImages(set, pick);
}

/**
 * Test-only fault injection (CVC_FAULT_HOLD_FINALIZE_MS): `exporter`, after
 * a wait of `holdMs` (cut short when the coordinator shuts down).
 */
export function holdExport(holdMs: number, exporter: ArtifactExporter): ArtifactExporter {
  return async (input) => {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, holdMs);
      input.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
    throwIfAborted(input.signal, `the export of run ${input.run.id}`);
    return exporter(input);
  };
}
