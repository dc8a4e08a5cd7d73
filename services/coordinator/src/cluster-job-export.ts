import { throwIfAborted } from '@cvc/core';
import { decodeShard, readManifest, readSourcePaths, type DatasetManifest } from '@cvc/data';
import type { ClusterJob } from '@cvc/proto';
import type { ObjectStore } from '@cvc/storage';
import { jobLayout } from './cluster-job-doc.js';
import type { StoredAssignments } from './cluster-jobs.js';
import { FinalizeError } from './errors.js';

/** What a job export gets: the job (FINALIZING), its CLUSTER_FINAL checkpoint and dataset manifest, where to read and write. */
export interface JobExportInput {
  readonly job: ClusterJob;
  /** Object key of the job's CLUSTER_FINAL checkpoint. */
  readonly finalCheckpoint: string;
  /** Object key of the manifest of the dataset version clustered. */
  readonly manifest: string;
  readonly store: ObjectStore;
  readonly signal: AbortSignal;
}

/** Where the export put the artifacts. */
export interface JobExportOutput {
  /** Key prefix of the encoder (model.json, weights.bin). */
  readonly encoder: string;
  /** Key of assignments.csv. */
  readonly assignments: string;
  readonly artifacts?: Record<string, string>;
}

/** Writes a finished job's artifacts; must be idempotent (it may run again after a crash, writing the same keys). */
export type JobExporter = (input: JobExportInput) => Promise<JobExportOutput>;

/**
 * The real export: the fine-tuned encoder of the CLUSTER_FINAL checkpoint
 * (cluster-jobs/JOB/encoder/, as a run's best fold is exported) and
 * cluster-jobs/JOB/assignments.csv.
 */
export const exportClusterJob: JobExporter = async (input) => {
  const { job, finalCheckpoint, store, signal } = input;
  if (!finalCheckpoint) throw new FinalizeError('NO_FINAL_CHECKPOINT', `clustering job ${job.id} uploaded no final checkpoint`);
  const { FoldTrainer } = await import('@cvc/model');
  const trainer = await FoldTrainer.resume(await store.getBytes(finalCheckpoint), finalCheckpoint);
  const prefix = jobLayout.encoder(job.id);
  try {
    throwIfAborted(signal, `the export of clustering job ${job.id}`);
    const { modelJson, weights } = await trainer.exportEncoder();
    await store.put(`${prefix}/model.json`, new TextEncoder().encode(modelJson), { contentType: 'application/json' });
    await store.put(`${prefix}/weights.bin`, weights);
  } finally {
    trainer.dispose();
  }
  throwIfAborted(signal, `the export of clustering job ${job.id}`);
  return { encoder: prefix, assignments: await writeAssignments(input) };
};

/** The header of a job's assignments.csv. */
export const ASSIGNMENTS_HEADER = ['record', 'split', 'fold', 'index', 'cluster', 'confidence', 'label', 'class', 'source'] as const;

const csvField = (v: string | number): string => {
  const s = String(v);
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/**
 * Writes cluster-jobs/JOB/assignments.csv from the worker's assignments:
 * one row per record of the dataset in manifest order (its shards in turn,
 * the order the worker clustered them), with the record's split, fold (empty
 * for test), index within the split, cluster, confidence, label and class
 * (empty when the dataset is unlabelled), and source: the file relative to
 * the imported image folder, or `split:index` for a built-in dataset.
 */
export async function writeAssignments(input: Pick<JobExportInput, 'job' | 'manifest' | 'store'>): Promise<string> {
  const { job, store } = input;
  const manifest: DatasetManifest = await readManifest(store, input.manifest);
  const prefix = input.manifest.replace(/\/manifest\.json$/, '');
  const stored = JSON.parse(new TextDecoder().decode(await store.getBytes(jobLayout.result(job.id)))) as StoredAssignments;
  const total = manifest.shards.reduce((s, e) => s + e.count, 0);
  if (stored.assignments.length !== total)
    throw new FinalizeError(
      'ASSIGNMENTS_MISMATCH',
      `clustering job ${job.id} sent ${stored.assignments.length} assignments for the ${total} records of dataset ${manifest.dataset} version ${manifest.version}`,
    );
  const labelled = manifest.imageFolder?.labeled !== false;
  const sources = {
    train: await readSourcePaths(manifest, 'train', (name) => store.getBytes(`${prefix}/${name}`)),
    test: await readSourcePaths(manifest, 'test', (name) => store.getBytes(`${prefix}/${name}`)),
  };
  const lines = [ASSIGNMENTS_HEADER.join(',')];
  let record = 0;
  for (const entry of manifest.shards) {
    const shard = decodeShard(await store.getBytes(`${prefix}/${entry.name}`), entry.name);
    for (let r = 0; r < shard.set.count; r++, record++) {
      const index = shard.indices[r] as number;
      const label = shard.set.labels[r] as number;
      const paths = sources[entry.split];
      lines.push(
        [
          record,
          entry.split,
          entry.fold ?? '',
          index,
          stored.assignments[record] as number,
          Number((stored.confidence[record] as number).toPrecision(6)),
          labelled ? label : '',
          labelled ? (manifest.classNames[label] ?? '') : '',
          paths?.[index] ?? `${entry.split}:${index}`,
        ]
          .map(csvField)
          .join(','),
      );
    }
  }
  const key = jobLayout.assignments(job.id);
  await store.put(key, new TextEncoder().encode(lines.join('\n') + '\n'), { contentType: 'text/csv' });
  return key;
}
