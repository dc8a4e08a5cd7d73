import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { describeError, isFileNotFound, pathExists, throwIfAborted } from '@cvc/core';
import { kmeans, scoreClustering, confusionMatrix, hungarianAccuracy } from '@cvc/clustering';
import { DataError, datasetInfo, decodeShard, IMAGE_FITS, readManifest, type DatasetManifest, type ImageFit, type ImageSet } from '@cvc/data';
import { embedImages, FoldTrainer, loadEncoder, readEncoderModelConfig } from '@cvc/model';
import { FoldState, type RunServiceClient, type Chunk, type Run } from '@cvc/proto';
import { createDatasetCatalog, createObjectStore } from '@cvc/storage';
import { initBackend, tf } from '@cvc/tfjs-runtime';
import type { CliEnv } from './env.js';
import { choiceOpt, intOpt, parse, positiveInt } from './args.js';
import { RemoteError, UsageError } from './errors.js';
import { resolveCluster, runServiceClient, sweepServiceClient, type ClusterEndpoints } from './cluster-config.js';
import { resolveRunOrSweep } from './sweep-best.js';
import { chooseFold, type FoldChoice } from './fetch-fold.js';
import { readStream } from './rpc.js';
import { Progress } from './progress.js';
import { encodeNpy } from './npy.js';
import { confusionPng } from './confusion-png.js';
import { writeClusterCommandReport } from './cluster-report-cmd.js';
import { num, table } from './format.js';
import { assignmentsCsv, csvLine, distancesToCentres, type Assignment } from './assignments.js';
import { copyToClusters, type CopyToResult } from './copy-to.js';
import { conversionNote, embedDataset, imagePng, recordDest, type EmbeddedImages } from './cluster-input.js';
import { embedFolder } from './folder-input.js';
import { requireParentDir } from './output-path.js';
import { CLUSTER_METHOD_OPTIONS, clusterMethodFromFlags, kmeansWithProgress, runClusterMethod, umapMap, type ClusterOutcome } from './cluster-methods.js';
import { embedImported, importedFromCluster, importedFromDirectory, isDatasetName, type ImportedVersion } from './imported-input.js';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/**
 * Downloads a fold's best checkpoint through the coordinator, checking the
 * sha256 sent last; a bar shows the bytes received. An abort of `signal`
 * cancels the stream.
 */
async function downloadCheckpoint(c: RunServiceClient, runId: string, fold: number, env: CliEnv, signal: AbortSignal | undefined): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  let expected = '';
  let size = 0;
  let got = 0;
  const bars = new Progress(env.stderr);
  const mb = (n: number): number => Math.round(n / 1e5) / 10;
  try {
    await readStream(signal, `downloading the checkpoint of run ${runId} fold ${fold}`, c.downloadCheckpoint({ runId, fold }), (m: Chunk) => {
      if (m.size > 0) size = m.size;
      if (m.data.length > 0) parts.push(m.data);
      got += m.data.length;
      if (m.sha256) expected = m.sha256;
      bars.set('checkpoint', { label: `fold ${fold} checkpoint`, value: mb(got), total: mb(Math.max(size, got)), detail: 'MB' });
    });
  } finally {
    bars.stop();
  }
  const bytes = new Uint8Array(Buffer.concat(parts));
  if (!expected || sha256(bytes) !== expected)
    throw new RemoteError(
      'CHECKSUM',
      `checkpoint of run ${runId} fold ${fold}: sha256 ${sha256(bytes)} does not match the ${expected || 'missing'} sent by the coordinator`,
    );
  return bytes;
}

/** The manifest of the dataset version a run trained on. */
async function datasetManifest(cluster: ClusterEndpoints, run: Run): Promise<DatasetManifest> {
  const store = createObjectStore(cluster.s3);
  const imp = await createDatasetCatalog(store).find(run.spec?.dataset ?? '', { folds: run.folds.length, version: run.datasetVersion });
  return readManifest(store, imp.manifest);
}

/** The run's test split, from the shards in object storage (verified). */
/**
 * The k of `encoder fetch --by cluster-acc`: the dataset's class count. An
 * unlabeled dataset (a flat image folder) has no labels to score against, so
 * it is a UsageError pointing at --by val-loss, as is a test split with
 * fewer images than classes.
 */
export function clusterAccClasses(manifest: DatasetManifest, where: string): number {
  if (manifest.imageFolder?.labeled === false || manifest.classNames.length < 2) {
    throw new UsageError(`--by cluster-acc needs labels (class folders); ${where} is unlabeled: use --by val-loss`);
  }
  const k = manifest.classNames.length;
  // k-means needs k points (else a ClusteringError about `k` that never names the test split).
  const test = manifest.shards.find((s) => s.split === 'test');
  if (test && test.count < k)
    throw new UsageError(`--by cluster-acc clusters the test split into its ${k} classes, but ${where} has ${test.count} test images: use --by val-loss`);
  return k;
}

/**
 * `encoder fetch --fold K`: K must be a fold of the run (a UsageError says
 * how many it has) that has finished with a best checkpoint.
 */
export function checkFetchableFold(run: Pick<Run, 'id' | 'folds'>, fold: number): void {
  if (!run.folds.some((f) => f.fold === fold))
    throw new UsageError(`run ${run.id} has no fold ${fold} (it has ${run.folds.length}: --fold 0..${Math.max(run.folds.length - 1, 0)})`);
  const done = run.folds.filter((f) => f.state === FoldState.FOLD_STATE_SUCCEEDED && f.bestCheckpoint);
  if (!done.some((f) => f.fold === fold)) throw new UsageError(`run ${run.id} fold ${fold} has not finished (finished: ${done.map((f) => f.fold).join(', ')})`);
}

async function runTestSet(cluster: ClusterEndpoints, run: Run): Promise<{ set: ImageSet; k: number }> {
  const store = createObjectStore(cluster.s3);
  const imp = await createDatasetCatalog(store).find(run.spec?.dataset ?? '', { folds: run.folds.length, version: run.datasetVersion });
  const manifest = await readManifest(store, imp.manifest);
  const k = clusterAccClasses(manifest, `dataset ${run.spec?.dataset} version ${run.datasetVersion}`);
  const entry = manifest.shards.find((s) => s.split === 'test');
  if (!entry) throw new RemoteError('NO_TEST_SPLIT', `dataset ${run.spec?.dataset} version ${run.datasetVersion} has no test shard`);
  const key = imp.manifest.replace(/manifest\.json$/, entry.name);
  const bytes = await store.getBytes(key);
  if (sha256(bytes) !== entry.sha256) throw new RemoteError('CHECKSUM', `${key}: sha256 does not match the manifest`);
  return { set: decodeShard(bytes, key).set, k };
}

async function encoderFromCheckpoint(bytes: Uint8Array): Promise<{ modelJson: string; weights: Uint8Array; trainer: FoldTrainer }> {
  const trainer = await FoldTrainer.resume(bytes, 'best checkpoint');
  const { modelJson, weights } = await trainer.exportEncoder();
  return { modelJson, weights, trainer };
}

async function encoderFetch(args: string[], env: CliEnv, signal: AbortSignal | undefined): Promise<number> {
  const { values, positionals } = parse(
    args,
    { fold: { type: 'string' }, by: { type: 'string' }, out: { type: 'string' }, cluster: { type: 'string' } },
    'encoder fetch',
  );
  const id = positionals[0];
  if (!id) throw new UsageError('encoder fetch needs a RUN or SWEEP id');
  const out = typeof values['out'] === 'string' ? values['out'] : join('encoders', id);
  const by = choiceOpt(values, 'by', ['val-loss', 'cluster-acc'] as const, 'val-loss');
  if (values['by'] !== undefined && typeof values['fold'] === 'string' && values['fold'] !== 'best')
    throw new UsageError(`--by chooses the best fold; --fold ${values['fold']} names one (give one of them)`);
  const cluster = await resolveCluster(typeof values['cluster'] === 'string' ? values['cluster'] : undefined);
  await initBackend('auto');
  const c = await runServiceClient(cluster);
  const sweeps = await sweepServiceClient(cluster);
  try {
    // A sweep id stands for the sweep's best run.
    const { run, sweepId } = await resolveRunOrSweep(c, sweeps, id, signal);
    const runId = run.id;
    if (sweepId) env.stderr.write(`sweep ${sweepId}: its best run is ${runId}\n`);
    const done = run.folds.filter((f) => f.state === FoldState.FOLD_STATE_SUCCEEDED && f.bestCheckpoint);
    if (done.length === 0) throw new RemoteError('NO_FOLDS', `run ${runId} has no finished fold yet`);
    const foldOpt = values['fold'];
    let choice: FoldChoice;
    if (typeof foldOpt === 'string' && foldOpt !== 'best') {
      const named = intOpt(values, 'fold', 0) as number;
      checkFetchableFold(run, named);
      choice = { by: 'fold', fold: named };
    } else if (by === 'val-loss') choice = { by: 'val-loss' };
    else {
      // Cluster each fold's codes of the test split; keep the most accurate.
      const { set, k } = await runTestSet(cluster, run);
      choice = {
        by: 'cluster-acc',
        accuracy: async (bytes, f) => {
          const { trainer } = await encoderFromCheckpoint(bytes);
          const codes = trainer.withInferenceStats(() => embedImages(trainer.net.encoder, set));
          trainer.dispose();
          const acc = hungarianAccuracy(set.labels, kmeans(codes, { k, nInit: 3, seed: 0 }).labels).accuracy;
          env.stderr.write(`fold ${f}: k-means accuracy on the test split ${acc.toFixed(4)}\n`);
          throwIfAborted(signal, `encoder fetch ${runId}`);
          return acc;
        },
      };
    }
    const { fold, checkpoint: ckpt, selection } = await chooseFold(done, choice, (f) => downloadCheckpoint(c, runId, f, env, signal));
    throwIfAborted(signal, `encoder fetch ${runId}`);
    const { modelJson, weights, trainer } = await encoderFromCheckpoint(ckpt);
    const shape = trainer.net.encoder.inputs[0]?.shape.slice(1) ?? [];
    const codeSize = trainer.net.encoder.outputs[0]?.shape[1] ?? 0;
    trainer.dispose();
    const status = run.folds[fold];
    const imageFolder = (await datasetManifest(cluster, run)).imageFolder;
    await mkdir(out, { recursive: true });
    await writeFile(join(out, 'model.json'), modelJson);
    await writeFile(join(out, 'weights.bin'), weights);
    // The network's configuration as model.json records it (input shape included): what the codes came from.
    const config = await readEncoderModelConfig(out);
    const meta = {
      run: runId,
      ...(sweepId ? { sweep: sweepId } : {}),
      fold,
      selectedBy: typeof foldOpt === 'string' && foldOpt !== 'best' ? 'fold' : by,
      ...(Object.keys(selection).length ? { clusterAccuracy: selection } : {}),
      model: run.spec?.model,
      dataset: run.spec?.dataset,
      datasetVersion: run.datasetVersion,
      ...(config ? { modelConfig: config.modelConfig } : {}),
      inputShape: shape,
      // How an image-folder dataset's images were fitted; `cvc cluster --images` resizes the same way.
      ...(imageFolder ? { fit: imageFolder.fit } : {}),
      codeSize,
      bestEpoch: status?.bestEpoch,
      losses: { train: status?.train?.loss, val: status?.val?.loss, test: status?.test?.loss },
      sha256: { checkpoint: sha256(ckpt), 'model.json': sha256(new TextEncoder().encode(modelJson)), 'weights.bin': sha256(weights) },
    };
    await writeFile(join(out, 'metadata.json'), JSON.stringify(meta, null, 2) + '\n');
    env.stdout.write(`encoder of run ${runId} fold ${fold} (${meta.selectedBy}) written to ${out}: model.json, weights.bin, metadata.json\n`);
    return 0;
  } finally {
    c.close();
    sweeps.close();
  }
}

/** What embed and cluster read from an encoder's metadata.json (all optional: an encoder from elsewhere has none). */
interface EncoderMeta {
  readonly sha256?: Record<string, string>;
  /** How the images of its dataset were fitted at import (image folders). */
  readonly fit?: unknown;
  readonly dataset?: unknown;
  readonly datasetVersion?: unknown;
}

async function checkEncoderMeta(dir: string): Promise<EncoderMeta> {
  let meta: EncoderMeta = {};
  try {
    meta = JSON.parse(await readFile(join(dir, 'metadata.json'), 'utf8')) as typeof meta;
  } catch (err) {
    if (isFileNotFound(err)) return {}; // an encoder from elsewhere: nothing to verify against
    throw new UsageError(`${join(dir, 'metadata.json')} cannot be read (${describeError(err)}); fetch the encoder again`);
  }
  for (const f of ['model.json', 'weights.bin']) {
    const want = meta.sha256?.[f];
    if (want && sha256(await readFile(join(dir, f))) !== want)
      throw new UsageError(`${join(dir, f)} does not match the sha256 in metadata.json (corrupted?); fetch the encoder again`);
  }
  return meta;
}

const encOpts = {
  encoder: { type: 'string' },
  dataset: { type: 'string' },
  images: { type: 'string' },
  fit: { type: 'string' },
  'skip-invalid': { type: 'boolean' },
  split: { type: 'string' },
  limit: { type: 'string' },
  'batch-size': { type: 'string' },
  cluster: { type: 'string' },
} as const;

/**
 * The images of `--dataset NAME|PATH` (a split, `--limit`) or `--images DIR`
 * (every image of the folder, resized to the encoder's input), embedded by
 * the encoder in `--encoder DIR`. Skipped files are listed on stderr.
 */
async function embedInput(
  cmd: 'embed' | 'cluster',
  values: Record<string, string | boolean | undefined>,
  env: CliEnv,
  signal: AbortSignal | undefined,
  keepPixels: boolean,
): Promise<EmbeddedImages> {
  const dir = values['encoder'];
  const dataset = values['dataset'];
  const images = values['images'];
  const usage = cmd === 'embed' ? ' --out FILE(.npy|.csv)' : '';
  if (typeof dataset === 'string' && typeof images === 'string')
    throw new UsageError(`${cmd}: --dataset ${dataset} and --images ${images} exclude each other (give one)`);
  if (typeof dir !== 'string' || (typeof dataset === 'string') === (typeof images === 'string'))
    throw new UsageError(`${cmd} needs --encoder DIR and one of --dataset NAME|PATH or --images DIR${usage}`);
  if (typeof images === 'string') {
    for (const f of ['split', 'limit'] as const)
      if (values[f] !== undefined) throw new UsageError(`--${f} applies to --dataset; --images ${images} reads every image of the folder`);
  } else {
    for (const f of ['fit', 'skip-invalid'] as const) if (values[f] !== undefined) throw new UsageError(`--${f} applies to --images, not --dataset`);
  }
  const batchSize = intOpt(values, 'batch-size', 256, positiveInt) as number;
  const split = choiceOpt(values, 'split', ['test', 'train'] as const, 'test');
  const limit = intOpt(values, 'limit', undefined, positiveInt);
  await initBackend('auto');
  const meta = await checkEncoderMeta(dir);
  throwIfAborted(signal, cmd);
  const encoder = await loadEncoder(dir);
  if (typeof dataset === 'string') {
    const lim = limit !== undefined ? { limit } : {};
    // A split of tens of thousands of images takes a while: a bar (a line per slice without a terminal).
    const bars = new Progress(env.stderr, { plainIntervalMs: 0 });
    const onSlice = (done: number, total: number): void => bars.set('embed', { label: `embedding ${dataset} ${split}`, value: done, total, detail: 'images' });
    try {
      // An import written with --out DIR, a dataset's own files, or a dataset imported into the cluster.
      const local = await importedFromDirectory(dataset);
      if (local) return await embedImported(encoder, local, { split, ...lim, batchSize, signal, onSlice });
      // `shadowed`: why the folder of that name here was not it (its message, to say what was tried when the cluster lacks it too).
      const fromCluster = async (shadowed?: string): Promise<EmbeddedImages> => {
        const also = (why: string, err: unknown): unknown =>
          shadowed !== undefined && err instanceof UsageError
            ? new UsageError(`${shadowed}; a folder of images is read with --images ${dataset}; and ${why}`)
            : err;
        let cluster: ClusterEndpoints;
        try {
          cluster = await resolveCluster(typeof values['cluster'] === 'string' ? values['cluster'] : undefined);
        } catch (err) {
          throw also(`there is no cluster to look dataset '${dataset}' up in (${(err as Error).message})`, err);
        }
        const version = meta.dataset === dataset && typeof meta.datasetVersion === 'string' ? meta.datasetVersion : undefined;
        let imported: ImportedVersion;
        try {
          imported = await importedFromCluster(cluster, dataset, version);
        } catch (err) {
          throw also(`no dataset '${dataset}' is imported into the cluster`, err);
        }
        return await embedImported(encoder, imported, { split, ...lim, batchSize, signal, onSlice });
      };
      if (datasetInfo(dataset) === undefined && !(await pathExists(dataset))) return await fromCluster();
      try {
        return await embedDataset(encoder, { ...env, dataset, split, ...lim, batchSize, signal, onSlice });
      } catch (err) {
        // A bare name that is also a folder here without a dataset's files (the images it was imported from, say)
        // is the cluster's dataset of that name.
        if (err instanceof DataError && err.code === 'DATASET_UNRECOGNISED') {
          if (isDatasetName(dataset)) return await fromCluster(err.message);
          throw new DataError(err.code, `${err.message}; a folder of images is read with --images ${dataset}`, undefined, { cause: err });
        }
        throw err;
      }
    } finally {
      bars.stop();
    }
  }
  const fitDefault = IMAGE_FITS.includes(meta.fit as ImageFit) ? (meta.fit as ImageFit) : 'cover';
  const bars = new Progress(env.stderr);
  try {
    const input = await embedFolder(encoder, {
      dir: images as string,
      fit: choiceOpt(values, 'fit', IMAGE_FITS, fitDefault),
      skipInvalid: values['skip-invalid'] === true,
      batchSize,
      keepPixels,
      progress: bars,
      signal,
    });
    for (const s of input.skipped) bars.log(`skipped ${s.path}: ${s.reason} [${s.code}]`);
    if (input.converted) bars.log(conversionNote(input.converted));
    return input;
  } finally {
    bars.stop();
  }
}

/** Writes `text` to `file` through a temporary file, so a reader never sees half of it. */
async function writeAtomic(file: string, text: string | Uint8Array): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

async function embedCommand(args: string[], env: CliEnv, signal: AbortSignal | undefined): Promise<number> {
  const { values } = parse(args, { ...encOpts, out: { type: 'string' } }, 'embed');
  const out = values['out'];
  if (typeof out !== 'string') throw new UsageError('embed needs --encoder DIR, one of --dataset NAME|PATH or --images DIR, and --out FILE(.npy|.csv)');
  if (!/\.(npy|csv)$/.test(out)) throw new UsageError(`--out must end in .npy or .csv, got ${out}`);
  await requireParentDir(out, '--out');
  const input = await embedInput('embed', values, env, signal, false);
  const { codes } = input;
  throwIfAborted(signal, 'embed');
  const label = (i: number): number | undefined => (input.labelled ? input.labels[i] : undefined);
  const className = (i: number): string | undefined => (input.labelled ? input.classNames[input.labels[i] as number] : undefined);
  if (out.endsWith('.npy')) {
    await writeAtomic(out, encodeNpy(codes.data, codes.n, codes.d));
    if (input.labelled) await writeAtomic(out.replace(/\.npy$/, '.labels.npy'), encodeNpy(Float32Array.from(input.labels), codes.n, 1));
    const lines = [csvLine(['path', 'label', 'class'])];
    for (let i = 0; i < codes.n; i++) lines.push(csvLine([input.paths[i], label(i), className(i)]));
    await writeAtomic(out.replace(/\.npy$/, '.paths.csv'), lines.join('\n') + '\n');
  } else {
    const lines = [csvLine(['path', ...Array.from({ length: codes.d }, (_, j) => `code${j}`), 'label', 'class'])];
    for (let i = 0; i < codes.n; i++)
      lines.push(csvLine([input.paths[i], ...[...codes.data.subarray(i * codes.d, (i + 1) * codes.d)].map((v) => v.toPrecision(7)), label(i), className(i)]));
    await writeAtomic(out, lines.join('\n') + '\n');
  }
  const skipped = input.skipped.length ? ` (${input.skipped.length} skipped)` : '';
  env.stdout.write(`${codes.n} codes of size ${codes.d} written to ${out}${skipped}\n`);
  return 0;
}

/**
 * k-means restarts of `cvc cluster` (the lowest inertia wins; also the start of --assign gmm). On
 * Fashion-MNIST codes 10 restarts land, for 4 seeds of 5, in a basin 0.03 accuracy worse than the
 * lowest-inertia one that 100 restarts find from every seed; 100 cost about 4 s for 10,000 10-d codes.
 */
const DEFAULT_N_INIT = 100;

/** `--k`: one cluster is no clustering. */
const atLeastTwo = z.number().int().min(2);

async function clusterCommand(args: string[], env: CliEnv, signal: AbortSignal | undefined): Promise<number> {
  const { values } = parse(
    args,
    {
      ...encOpts,
      k: { type: 'string' },
      'n-init': { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
      baseline: { type: 'boolean' },
      ...CLUSTER_METHOD_OPTIONS,
      confusion: { type: 'string' },
      out: { type: 'string' },
      'copy-to': { type: 'string' },
      force: { type: 'boolean' },
      report: { type: 'string' },
    },
    'cluster',
  );
  const k = intOpt(values, 'k', 10, atLeastTwo) as number;
  const nInit = intOpt(values, 'n-init', DEFAULT_N_INIT, positiveInt) as number;
  const seed = intOpt(values, 'seed', 0) as number;
  if (typeof values['confusion'] === 'string') await requireParentDir(values['confusion'], '--confusion');
  const outDir = typeof values['out'] === 'string' ? values['out'] : 'clusters';
  const copyTo = typeof values['copy-to'] === 'string' ? values['copy-to'] : undefined;
  if (values['force'] && copyTo === undefined) throw new UsageError('--force applies to --copy-to');
  const method = clusterMethodFromFlags(values, k, nInit, seed);
  if (method.umap?.context !== undefined && typeof values['images'] === 'string')
    throw new UsageError(`--umap-context takes its images from the other split of --dataset; --images ${values['images']} has none`);
  const input = await embedInput('cluster', values, env, signal, values['baseline'] === true || typeof values['report'] === 'string');
  const { codes } = input;
  if (codes.n < k) throw new UsageError(`--k ${k} needs at least ${k} images, got ${codes.n}`);
  // --umap-context: images of the other split that UMAP and the assignment also see; only `input` is written and scored.
  const contextCount = method.umap?.context;
  let context: EmbeddedImages | undefined;
  if (contextCount !== undefined) {
    const other = values['split'] === 'train' ? 'test' : 'train';
    context = await embedInput('cluster', { ...values, split: other, limit: String(contextCount) }, env, signal, values['baseline'] === true);
  }
  throwIfAborted(signal, 'cluster');
  const labelled = input.labelled;
  const results: Record<string, { accuracy: number; nmi: number; ari: number; purity: number; seconds: number }> = {};
  const record = (o: { name: string; labels: Int32Array; seconds: number }): void => {
    if (labelled) results[o.name] = { ...scoreClustering(input.labels, o.labels), seconds: o.seconds };
  };
  // k-means on the codes is the reference every other method is compared with.
  const t0 = performance.now();
  const km = await kmeansWithProgress(codes, { k, nInit, seed }, 'encoder', env.stderr, signal);
  const plain = method.umap === undefined && method.assign === 'kmeans';
  if (!plain || method.decCentres) record({ name: 'encoder+kmeans', labels: km.labels, seconds: (performance.now() - t0) / 1000 });
  const chosen: ClusterOutcome =
    plain && !method.decCentres
      ? {
          name: 'encoder+kmeans',
          labels: km.labels,
          score: distancesToCentres(codes, km.centers, km.labels),
          scoreColumn: 'distance',
          seconds: (performance.now() - t0) / 1000,
          steps: [],
        }
      : await runClusterMethod('encoder', codes, method, env.stderr, signal, context?.codes);
  for (const s of chosen.steps) if (s.name !== 'encoder+kmeans') record(s);
  record(chosen);
  const final = chosen.labels;
  const measure = chosen.score;
  if (values['baseline']) {
    throwIfAborted(signal, 'cluster');
    const set = input.pixels as ImageSet;
    const per = set.height * set.width * set.channels;
    const pixels = { data: Float32Array.from(set.images, (v) => v / 255), n: set.count, d: per };
    const t1 = performance.now();
    const pkm = await kmeansWithProgress(pixels, { k, nInit, seed }, 'pixels', env.stderr, signal);
    record({ name: 'pixels+kmeans', labels: pkm.labels, seconds: (performance.now() - t1) / 1000 });
    // The same method on the raw pixels, so each encoder method has its raw-pixel counterpart.
    if (!plain || method.decCentres) {
      const ctxSet = context?.pixels;
      const ctxPixels = ctxSet ? { data: Float32Array.from(ctxSet.images, (v) => v / 255), n: ctxSet.count, d: per } : undefined;
      const raw = await runClusterMethod('pixels', pixels, method, env.stderr, signal, ctxPixels);
      for (const s of raw.steps) if (s.name !== 'pixels+kmeans') record(s);
      record(raw);
    }
  }
  if (typeof values['confusion'] === 'string') {
    if (!labelled) throw new UsageError(`--confusion needs labelled images (class folders); ${values['images']} has none`);
    const m = confusionMatrix(input.labels, final);
    const { mapping } = hungarianAccuracy(input.labels, final);
    // Columns in the order the clusters map to, so the matched cells form the diagonal.
    await writeFile(values['confusion'], confusionPng(m, mapping, input.classNames));
  }
  const rows: Assignment[] = Array.from({ length: codes.n }, (_, i) => ({
    path: input.paths[i] as string,
    cluster: final[i] as number,
    score: measure[i] as number,
    ...(labelled ? { label: input.labels[i], className: input.classNames[input.labels[i] as number] } : {}),
  }));
  await mkdir(outDir, { recursive: true });
  const csvFile = join(outDir, 'assignments.csv');
  await writeAtomic(csvFile, assignmentsCsv(rows, chosen.scoreColumn));
  let copied: CopyToResult | undefined;
  if (copyTo !== undefined) {
    throwIfAborted(signal, 'cluster');
    const bars = new Progress(env.stderr);
    try {
      const files = input.files;
      const pixels = input.pixels;
      copied = await copyToClusters(
        rows.map((r, i) =>
          files
            ? { cluster: r.cluster, dest: r.path, file: files[i] as string }
            : { cluster: r.cluster, dest: recordDest(r.path), png: () => imagePng(pixels as ImageSet, i) },
        ),
        k,
        copyTo,
        {
          force: values['force'] === true,
          ...(input.root !== undefined ? { sourceRoot: input.root } : {}),
          ...(signal ? { signal } : {}),
          onImage: (done, total) => bars.set('copy', { label: `arranging into ${copyTo}`, value: done, total, detail: 'images' }),
        },
      );
    } finally {
      bars.stop();
    }
  }
  const sizes = new Array<number>(k).fill(0);
  for (const c of final) sizes[c] = (sizes[c] ?? 0) + 1;
  if (values['json'])
    env.stdout.write(
      JSON.stringify(
        {
          images: codes.n,
          k,
          nInit,
          seed,
          codeSize: codes.d,
          method: chosen.name,
          ...(context ? { umapContext: context.codes.n } : {}),
          results,
          clusterSizes: sizes,
          assignments: csvFile,
          skipped: input.skipped,
          ...(input.ignored ? { ignored: input.ignored } : {}),
          ...(copied ? { copyTo: { dir: copyTo, linked: copied.linked, copied: copied.copied, written: copied.written } } : {}),
        },
        null,
        2,
      ) + '\n',
    );
  else {
    const skipped = input.skipped.length ? `, ${input.skipped.length} skipped` : '';
    const ctx = context ? ` (UMAP also saw ${context.codes.n} images of the other split)` : '';
    env.stdout.write(`${codes.n} images${skipped}, ${codes.d}-d codes, k=${k}, ${nInit} restarts; assignments from ${chosen.name}${ctx}\n`);
    if (labelled)
      env.stdout.write(
        table(
          ['method', 'accuracy', 'NMI', 'ARI', 'purity', 'seconds'],
          Object.entries(results).map(([m, r]) => [m, num(r.accuracy, 4), num(r.nmi, 4), num(r.ari, 4), num(r.purity, 4), r.seconds.toFixed(2)]),
        ) + '\n',
      );
    else env.stdout.write('no class folders: no accuracy to score\n');
    env.stdout.write(`cluster sizes: ${sizes.join(' ')}\n`);
    env.stdout.write(`assignments of ${codes.n} images written to ${csvFile}\n`);
    if (copied) {
      const how = [
        copied.linked && `${copied.linked} hard-linked`,
        copied.copied && `${copied.copied} copied`,
        copied.written && `${copied.written} written as PNG`,
      ];
      env.stdout.write(`${how.filter(Boolean).join(', ')} into ${copied.folders.length} folders under ${copyTo}\n`);
    }
  }
  if (typeof values['report'] === 'string') {
    // With a UMAP step the map is a 2-D UMAP of the codes (same neighbours, seed and context); else the report's PCA.
    const coords = method.umap ? await umapMap(codes, method, env.stderr, signal, context?.codes) : undefined;
    await writeClusterCommandReport(
      {
        dir: values['report'],
        ...(coords ? { coords, coordsName: 'UMAP' } : {}),
        input,
        assignments: final,
        measure,
        measureKind: chosen.scoreColumn,
        results,
        k,
        method: chosen.name,
        json: values['json'] === true,
      },
      env,
    );
  }
  tf.disposeVariables();
  return 0;
}

/** `cvc encoder fetch`, `cvc embed`, `cvc cluster`. */
export async function encoderCommand(cmd: 'encoder' | 'embed' | 'cluster', argv: string[], env: CliEnv, signal?: AbortSignal): Promise<number> {
  if (cmd === 'embed') return embedCommand(argv, env, signal);
  if (cmd === 'cluster') return clusterCommand(argv, env, signal);
  const [sub, ...rest] = argv;
  if (sub !== 'fetch')
    throw new UsageError(`unknown 'encoder ${sub ?? ''}' (use: cvc encoder fetch RUN [--fold best|K] [--by val-loss|cluster-acc] --out DIR)`);
  return encoderFetch(rest, env, signal);
}
