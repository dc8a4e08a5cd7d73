import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError, isFileNotFound, throwIfAborted } from '@cvc/core';
import { kmeans, scoreClustering, confusionMatrix, hungarianAccuracy } from '@cvc/clustering';
import { decodeShard, loadDataset, parseManifest, selectImages, stratifiedSubset, type ImageSet } from '@cvc/data';
import { decRefine, embedImages, FoldTrainer, loadEncoder } from '@cvc/model';
import { FoldState, type RunServiceClient, type Chunk, type Run } from '@cvc/proto';
import { createDatasetCatalog, createObjectStore } from '@cvc/storage';
import { initBackend, tf } from '@cvc/tfjs-runtime';
import type { CliEnv } from './env.js';
import { choiceOpt, intOpt, parse, positiveInt } from './args.js';
import { RemoteError, UsageError } from './errors.js';
import { resolveCluster, runServiceClient, type ClusterEndpoints } from './cluster-config.js';
import { readStream, unary } from './rpc.js';
import { Progress } from './progress.js';
import { encodeNpy } from './npy.js';
import { confusionPng } from './confusion-png.js';
import { num, table } from './format.js';

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

/** The run's test split, from the shards in object storage (verified). */
async function runTestSet(cluster: ClusterEndpoints, run: Run): Promise<{ set: ImageSet }> {
  const store = createObjectStore(cluster.s3);
  const imp = await createDatasetCatalog(store).find(run.spec?.dataset ?? '', { folds: run.folds.length, version: run.datasetVersion });
  const manifest = parseManifest(new TextDecoder().decode(await store.getBytes(imp.manifest)), imp.manifest);
  const entry = manifest.shards.find((s) => s.split === 'test');
  if (!entry) throw new RemoteError('NO_TEST_SPLIT', `dataset ${run.spec?.dataset} version ${run.datasetVersion} has no test shard`);
  const key = imp.manifest.replace(/manifest\.json$/, entry.name);
  const bytes = await store.getBytes(key);
  if (sha256(bytes) !== entry.sha256) throw new RemoteError('CHECKSUM', `${key}: sha256 does not match the manifest`);
  return { set: decodeShard(bytes, key).set };
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
  const runId = positionals[0];
  if (!runId) throw new UsageError('encoder fetch needs a RUN id');
  const out = typeof values['out'] === 'string' ? values['out'] : join('encoders', runId);
  const by = choiceOpt(values, 'by', ['val-loss', 'cluster-acc'] as const, 'val-loss');
  const cluster = await resolveCluster(typeof values['cluster'] === 'string' ? values['cluster'] : undefined);
  await initBackend('auto');
  const c = await runServiceClient(cluster);
  try {
    const run = await unary<Run>(signal, `encoder fetch ${runId}`, (cb) => c.getRun({ runId }, cb));
    const done = run.folds.filter((f) => f.state === FoldState.FOLD_STATE_SUCCEEDED && f.bestCheckpoint);
    if (done.length === 0) throw new RemoteError('NO_FOLDS', `run ${runId} has no finished fold yet`);
    let fold: number;
    const selection: Record<string, number> = {};
    const foldOpt = values['fold'];
    if (typeof foldOpt === 'string' && foldOpt !== 'best') {
      fold = intOpt(values, 'fold', 0) as number;
      if (!done.some((f) => f.fold === fold))
        throw new UsageError(`run ${runId} fold ${fold} has not finished (finished: ${done.map((f) => f.fold).join(', ')})`);
    } else if (by === 'val-loss') {
      fold = done.reduce((b, f) => ((f.val?.loss ?? Infinity) < (b.val?.loss ?? Infinity) ? f : b)).fold;
    } else {
      // Cluster each fold's codes of the test split; keep the most accurate.
      const { set } = await runTestSet(cluster, run);
      const k = Math.max(...set.labels) + 1;
      let best = { fold: -1, acc: -1 };
      for (const f of done) {
        const { trainer } = await encoderFromCheckpoint(await downloadCheckpoint(c, runId, f.fold, env, signal));
        const codes = trainer.withInferenceStats(() => embedImages(trainer.net.encoder, set));
        trainer.dispose();
        const acc = hungarianAccuracy(set.labels, kmeans(codes, { k, nInit: 3, seed: 0 }).labels).accuracy;
        selection[`fold${f.fold}`] = acc;
        env.stderr.write(`fold ${f.fold}: k-means accuracy on the test split ${acc.toFixed(4)}\n`);
        if (acc > best.acc) best = { fold: f.fold, acc };
      }
      fold = best.fold;
    }
    throwIfAborted(signal, `encoder fetch ${runId}`);
    const ckpt = await downloadCheckpoint(c, runId, fold, env, signal);
    const { modelJson, weights, trainer } = await encoderFromCheckpoint(ckpt);
    const shape = trainer.net.encoder.inputs[0]?.shape.slice(1) ?? [];
    const codeSize = trainer.net.encoder.outputs[0]?.shape[1] ?? 0;
    trainer.dispose();
    const status = run.folds[fold];
    await mkdir(out, { recursive: true });
    await writeFile(join(out, 'model.json'), modelJson);
    await writeFile(join(out, 'weights.bin'), weights);
    const meta = {
      run: runId,
      fold,
      selectedBy: typeof foldOpt === 'string' && foldOpt !== 'best' ? 'fold' : by,
      ...(Object.keys(selection).length ? { clusterAccuracy: selection } : {}),
      model: run.spec?.model,
      dataset: run.spec?.dataset,
      datasetVersion: run.datasetVersion,
      inputShape: shape,
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
  }
}

/** The split of a dataset to embed or cluster, optionally a seeded stratified subset. */
async function splitOf(env: CliEnv, dataset: string, split: 'test' | 'train', limit: number | undefined): Promise<ImageSet> {
  const ds = await loadDataset(dataset, env);
  const set = split === 'train' ? ds.train : ds.test;
  return limit !== undefined && limit < set.count ? selectImages(set, stratifiedSubset(set.labels, limit, 0)) : set;
}

async function checkEncoderMeta(dir: string): Promise<void> {
  let meta: { sha256?: Record<string, string> } = {};
  try {
    meta = JSON.parse(await readFile(join(dir, 'metadata.json'), 'utf8')) as typeof meta;
  } catch (err) {
    if (isFileNotFound(err)) return; // an encoder from elsewhere: nothing to verify against
    throw new UsageError(`${join(dir, 'metadata.json')} cannot be read (${describeError(err)}); fetch the encoder again`);
  }
  for (const f of ['model.json', 'weights.bin']) {
    const want = meta.sha256?.[f];
    if (want && sha256(await readFile(join(dir, f))) !== want)
      throw new UsageError(`${join(dir, f)} does not match the sha256 in metadata.json (corrupted?); fetch the encoder again`);
  }
}

const encOpts = {
  encoder: { type: 'string' },
  dataset: { type: 'string' },
  split: { type: 'string' },
  limit: { type: 'string' },
  'batch-size': { type: 'string' },
} as const;

async function embedCommand(args: string[], env: CliEnv, signal: AbortSignal | undefined): Promise<number> {
  const { values } = parse(args, { ...encOpts, out: { type: 'string' } }, 'embed');
  const dir = values['encoder'];
  const dataset = values['dataset'];
  const out = values['out'];
  if (typeof dir !== 'string' || typeof dataset !== 'string' || typeof out !== 'string')
    throw new UsageError('embed needs --encoder DIR --dataset NAME|PATH --out FILE(.npy|.csv)');
  if (!/\.(npy|csv)$/.test(out)) throw new UsageError(`--out must end in .npy or .csv, got ${out}`);
  await initBackend('auto');
  await checkEncoderMeta(dir);
  const set = await splitOf(env, dataset, choiceOpt(values, 'split', ['test', 'train'] as const, 'test'), intOpt(values, 'limit', undefined, positiveInt));
  throwIfAborted(signal, 'embed');
  const encoder = await loadEncoder(dir);
  const codes = embedImages(encoder, set, intOpt(values, 'batch-size', 256, positiveInt));
  throwIfAborted(signal, 'embed');
  if (out.endsWith('.npy')) {
    await writeFile(out, encodeNpy(codes.data, codes.n, codes.d));
    await writeFile(out.replace(/\.npy$/, '.labels.npy'), encodeNpy(Float32Array.from(set.labels), codes.n, 1));
  } else {
    const lines = [[...Array.from({ length: codes.d }, (_, j) => `code${j}`), 'label'].join(',')];
    for (let i = 0; i < codes.n; i++)
      lines.push([...codes.data.subarray(i * codes.d, (i + 1) * codes.d)].map((v) => v.toPrecision(7)).join(',') + `,${set.labels[i]}`);
    await writeFile(out, lines.join('\n') + '\n');
  }
  env.stdout.write(`${codes.n} codes of size ${codes.d} written to ${out}\n`);
  return 0;
}

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
      dec: { type: 'boolean' },
      confusion: { type: 'string' },
    },
    'cluster',
  );
  const dir = values['encoder'];
  const dataset = values['dataset'];
  if (typeof dir !== 'string' || typeof dataset !== 'string') throw new UsageError('cluster needs --encoder DIR --dataset NAME|PATH');
  const k = intOpt(values, 'k', 10, positiveInt) as number;
  const nInit = intOpt(values, 'n-init', 10, positiveInt) as number;
  const seed = intOpt(values, 'seed', 0) as number;
  if (k < 2) throw new UsageError(`--k must be >= 2, got ${k}`);
  await initBackend('auto');
  await checkEncoderMeta(dir);
  const set = await splitOf(env, dataset, choiceOpt(values, 'split', ['test', 'train'] as const, 'test'), intOpt(values, 'limit', undefined, positiveInt));
  throwIfAborted(signal, 'cluster');
  const encoder = await loadEncoder(dir);
  const codes = embedImages(encoder, set, intOpt(values, 'batch-size', 256, positiveInt));
  throwIfAborted(signal, 'cluster');
  const results: Record<string, { accuracy: number; nmi: number; ari: number; purity: number; seconds: number }> = {};
  let t0 = performance.now();
  const km = kmeans(codes, { k, nInit, seed });
  results['encoder+kmeans'] = { ...scoreClustering(set.labels, km.labels), seconds: (performance.now() - t0) / 1000 };
  let final = km.labels;
  if (values['dec']) {
    throwIfAborted(signal, 'cluster');
    t0 = performance.now();
    const dec = decRefine(codes, km.centers, k);
    results['encoder+dec'] = { ...scoreClustering(set.labels, dec.labels), seconds: (performance.now() - t0) / 1000 };
    final = dec.labels;
  }
  if (values['baseline']) {
    throwIfAborted(signal, 'cluster');
    t0 = performance.now();
    const per = set.height * set.width * set.channels;
    const pixels = Float32Array.from(set.images, (v) => v / 255);
    const raw = kmeans({ data: pixels, n: set.count, d: per }, { k, nInit, seed });
    results['pixels+kmeans'] = { ...scoreClustering(set.labels, raw.labels), seconds: (performance.now() - t0) / 1000 };
  }
  if (typeof values['confusion'] === 'string') {
    const m = confusionMatrix(set.labels, final);
    const { mapping } = hungarianAccuracy(set.labels, final);
    // Columns in the order the clusters map to, so the matched cells form the diagonal.
    await writeFile(values['confusion'], confusionPng(m, mapping));
  }
  if (values['json']) env.stdout.write(JSON.stringify({ images: set.count, k, nInit, seed, codeSize: codes.d, results }, null, 2) + '\n');
  else {
    env.stdout.write(`${set.count} images, ${codes.d}-d codes, k=${k}, ${nInit} restarts\n`);
    env.stdout.write(
      table(
        ['method', 'accuracy', 'NMI', 'ARI', 'purity', 'seconds'],
        Object.entries(results).map(([m, r]) => [m, num(r.accuracy, 4), num(r.nmi, 4), num(r.ari, 4), num(r.purity, 4), r.seconds.toFixed(2)]),
      ) + '\n',
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
