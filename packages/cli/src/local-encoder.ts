import { createHash } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageFolderInfo } from '@cvc/data';
import { FoldTrainer, readEncoderModelConfig, type FoldSummary } from '@cvc/model';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** What the encoder of a `cvc cv --local` run records about where it came from. */
export interface LocalEncoderSource {
  /** The run's output directory (`cv --local --out`). */
  readonly out: string;
  readonly model: string;
  readonly dataset: string;
  readonly datasetVersion: string;
  /** The best fold's summary (its fold, best epoch and losses). */
  readonly fold: FoldSummary;
  /** The dataset's image-folder record (absent for a built-in dataset): its fit is what `cvc cluster --images` resizes by. */
  readonly imageFolder?: ImageFolderInfo | undefined;
}

/**
 * Writes the encoder of a local run's best fold into `dir` as `cvc encoder
 * fetch` writes a cluster run's: `model.json` + `weights.bin` (a
 * TensorFlow.js layers model with the inference-time batch-norm statistics
 * baked in) and `metadata.json` (run directory, fold, dataset version, input
 * shape, code size, losses, fit, checksums), so `cvc embed` / `cvc cluster
 * --encoder DIR` take it. `checkpoint` is the fold's `best.ckpt`. The files
 * are written next to their final names and renamed, metadata last.
 */
export async function writeLocalEncoder(dir: string, checkpoint: Uint8Array, src: LocalEncoderSource): Promise<void> {
  const trainer = await FoldTrainer.resume(checkpoint, join(src.out, `fold-${src.fold.fold}`, 'best.ckpt'));
  let modelJson: string;
  let weights: Uint8Array;
  let shape: (number | null)[];
  let codeSize: number;
  try {
    ({ modelJson, weights } = await trainer.exportEncoder());
    shape = trainer.net.encoder.inputs[0]?.shape.slice(1) ?? [];
    codeSize = trainer.net.encoder.outputs[0]?.shape[1] ?? 0;
  } finally {
    trainer.dispose();
  }
  await mkdir(dir, { recursive: true });
  const put = async (name: string, bytes: Uint8Array | string): Promise<void> => {
    await writeFile(join(dir, `${name}.tmp`), bytes);
    await rename(join(dir, `${name}.tmp`), join(dir, name));
  };
  await put('model.json', modelJson);
  await put('weights.bin', weights);
  const config = await readEncoderModelConfig(dir);
  const m = src.fold.metrics;
  const meta = {
    localRun: src.out,
    fold: src.fold.fold,
    selectedBy: 'val-loss',
    model: src.model,
    dataset: src.dataset,
    datasetVersion: src.datasetVersion,
    ...(config ? { modelConfig: config.modelConfig } : {}),
    inputShape: shape,
    ...(src.imageFolder ? { fit: src.imageFolder.fit } : {}),
    codeSize,
    bestEpoch: src.fold.bestEpoch,
    losses: { train: m.train.loss, val: m.val.loss, test: m.test.loss },
    sha256: { checkpoint: sha256(checkpoint), 'model.json': sha256(new TextEncoder().encode(modelJson)), 'weights.bin': sha256(weights) },
  };
  await put('metadata.json', JSON.stringify(meta, null, 2) + '\n');
}
