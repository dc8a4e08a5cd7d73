import { CancelledError, throwIfAborted } from '@cvc/core';
import {
  classHistogram,
  downloadDataset,
  loadDataset,
  importDataset,
  directorySink,
  writeManifest,
  DEFAULT_FOLDS,
  FOLD_SCHEMES,
  foldCountSchema,
  DataError,
  datasetInfo,
  locateDataset,
  type Dataset,
  type ImageSet,
  type ShardSink,
} from '@cvc/data';
import { seedSchema } from '@cvc/model';
import type { CliEnv } from './env.js';
import { choiceOpt, intOpt, parse, positiveInt } from './args.js';
import { UsageError } from './errors.js';
import { table } from './format.js';
import { resolveCluster, type ClusterEndpoints } from './cluster-config.js';
import { importedFromCluster, importedFromDirectory, isDatasetName, type ImportedVersion } from './imported-input.js';
import { describeImport, importJson } from './inspect-import.js';
import { listClusterImports, renderImports } from './dataset-list.js';
import { createDatasetCatalog, createObjectStore } from '@cvc/storage';
import { importToStore } from './s3-import.js';
import { IMAGE_IMPORT_OPTIONS, importImageFolderCommand } from './image-import-cmd.js';
import { Progress } from './progress.js';

function describeSet(name: string, set: ImageSet, classNames: readonly string[]): string {
  const h = classHistogram(set.labels, classNames.length);
  const rows = h.map((n, i) => [String(i), classNames[i] ?? String(i), String(n)]);
  return `${name}: ${set.count} images, ${set.height}x${set.width}x${set.channels} uint8\n${table(['label', 'class', 'images'], rows)}`;
}

/**
 * The imported version `dataset inspect TARGET` shows, or undefined for a
 * built-in dataset's files: a directory written by `dataset import --out DIR`,
 * else (a name that is no built-in dataset and no dataset directory here, such
 * as the folder of images it was imported from) the cluster's newest version
 * of that name when the cluster has one.
 */
async function inspectedImport(target: string, values: Record<string, unknown>): Promise<ImportedVersion | undefined> {
  const local = await importedFromDirectory(target);
  if (local) return local;
  if (datasetInfo(target) !== undefined || !isDatasetName(target) || (await isDatasetDirectory(target))) return undefined;
  const clusterFile = typeof values['cluster'] === 'string' ? values['cluster'] : undefined;
  let cluster: ClusterEndpoints;
  try {
    cluster = await resolveCluster(clusterFile);
  } catch (err) {
    // No cluster (and --cluster not given): the name is read as a path, which says what it is not.
    if (err instanceof UsageError && clusterFile === undefined) return undefined;
    throw err;
  }
  if ((await createDatasetCatalog(createObjectStore(cluster.s3)).list(target)).length === 0) return undefined;
  return { ...(await importedFromCluster(cluster, target, undefined)), where: "the cluster's object store (its newest version)" };
}

/** Whether `dir` holds a built-in format's files (IDX or CIFAR-10 batches). */
async function isDatasetDirectory(dir: string): Promise<boolean> {
  try {
    await locateDataset(dir, { cacheDir: '' });
    return true;
  } catch (err) {
    if (err instanceof DataError) return false;
    throw err;
  }
}

/** `cvc dataset list|inspect|download|import ...` */
export async function datasetCommand(argv: string[], env: CliEnv, signal?: AbortSignal): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'inspect') {
    const { values, positionals } = parse(rest, { json: { type: 'boolean' }, cluster: { type: 'string' } }, 'dataset inspect');
    const target = positionals[0];
    if (!target) throw new UsageError('dataset inspect needs a dataset name or PATH');
    const imported = await inspectedImport(target, values);
    if (imported) {
      env.stdout.write(
        values['json'] ? JSON.stringify(importJson(imported.manifest, imported.where), null, 2) + '\n' : describeImport(imported.manifest, imported.where),
      );
      return 0;
    }
    const ds = await loadDataset(target, env);
    if (values['json']) {
      const hist = (s: ImageSet): number[] => classHistogram(s.labels, ds.numClasses);
      env.stdout.write(
        JSON.stringify(
          {
            name: ds.name,
            dir: ds.dir,
            format: ds.format,
            shape: [ds.train.height, ds.train.width, ds.train.channels],
            classNames: ds.classNames,
            train: { count: ds.train.count, classCounts: hist(ds.train) },
            test: { count: ds.test.count, classCounts: hist(ds.test) },
          },
          null,
          2,
        ) + '\n',
      );
      return 0;
    }
    env.stdout.write(
      `dataset ${ds.name} (${ds.format}) from ${ds.dir}\n\n${describeSet('train', ds.train, ds.classNames)}\n\n${describeSet('test', ds.test, ds.classNames)}\n`,
    );
    return 0;
  }
  if (sub === 'list') {
    const { values, positionals } = parse(rest, { json: { type: 'boolean' }, cluster: { type: 'string' } }, 'dataset list');
    if (positionals.length > 0) throw new UsageError(`dataset list takes no arguments, got ${positionals.join(' ')}`);
    const rows = await listClusterImports(await resolveCluster(typeof values['cluster'] === 'string' ? values['cluster'] : undefined));
    env.stdout.write(values['json'] ? JSON.stringify(rows, null, 2) + '\n' : renderImports(rows));
    return 0;
  }
  if (sub === 'download') {
    const { positionals } = parse(rest, {}, 'dataset download');
    const name = positionals[0];
    if (!name) throw new UsageError('dataset download needs a name: mnist, fashion-mnist or cifar-10');
    const bars = new Progress(env.stderr);
    let dir: string;
    try {
      dir = await downloadDataset(name, env.cacheDir, {
        ...(signal ? { signal } : {}),
        onProgress: (file, got, total) => bars.set(file, { label: file, value: Math.round(got / 1e5) / 10, total: Math.round(total / 1e5) / 10, detail: 'MB' }),
      });
    } catch (err) {
      // A stopped download surfaces as a failed fetch; say what happened.
      if (signal?.aborted && !(err instanceof CancelledError)) throw new CancelledError(`downloading ${name}`, { cause: err });
      throw err;
    } finally {
      bars.stop();
    }
    env.stdout.write(`${name} is in ${dir}\n`);
    return 0;
  }
  if (sub === 'import') {
    const { values, positionals } = parse(
      rest,
      {
        folds: { type: 'string' },
        seed: { type: 'string' },
        'fold-scheme': { type: 'string' },
        limit: { type: 'string' },
        out: { type: 'string' },
        cluster: { type: 'string' },
        ...IMAGE_IMPORT_OPTIONS,
      },
      'dataset import',
    );
    const target = positionals[0];
    if (!target) throw new UsageError('dataset import needs a dataset name or PATH');
    // An image folder: --name (or any image option) says so.
    if (Object.keys(IMAGE_IMPORT_OPTIONS).some((k) => values[k] !== undefined)) {
      for (const k of ['fold-scheme', 'limit']) if (values[k] !== undefined) throw new UsageError(`--${k} is not an option of an image-folder import`);
      return importImageFolderCommand(target, values, env, signal);
    }
    const load = async (): Promise<Dataset> => {
      try {
        return await loadDataset(target, env);
      } catch (err) {
        // A folder of images without --name lands here: say what to add.
        if (err instanceof DataError && err.code === 'DATASET_UNRECOGNISED')
          throw new DataError(
            err.code,
            `${err.message}; to import a folder of images give the dataset a name: cvc dataset import ${target} --name NAME`,
            undefined,
            {
              cause: err,
            },
          );
        throw err;
      }
    };
    const limit = intOpt(values, 'limit', undefined, positiveInt);
    const opts = {
      folds: intOpt(values, 'folds', DEFAULT_FOLDS, foldCountSchema) as number,
      seed: intOpt(values, 'seed', 42, seedSchema) as number,
      scheme: choiceOpt(values, 'fold-scheme', FOLD_SCHEMES, 'stratified'),
      ...(limit !== undefined ? { limit } : {}),
    };
    const out = values['out'];
    const shards = opts.folds + 1;
    // A handful of shards: every one gets its line without a terminal.
    const bars = new Progress(env.stderr, { plainIntervalMs: 0 });
    let written = 0;
    const onShard = (name: string, bytes: number): void => {
      written++;
      bars.set('import', { label: `importing ${target}`, value: written, total: shards, detail: `shards (${name}, ${(bytes / 1e6).toFixed(1)} MB)` });
    };
    try {
      if (typeof out === 'string') {
        const ds = await load();
        throwIfAborted(signal, `importing ${ds.name}`);
        const sink = directorySink(out);
        const counted: ShardSink = async (name, chunks) => {
          throwIfAborted(signal, `importing ${ds.name}`);
          const r = await sink(name, chunks);
          onShard(name, r.bytes);
          return r;
        };
        const manifest = await importDataset(ds, opts, counted);
        throwIfAborted(signal, `importing ${ds.name}`);
        await writeManifest(out, manifest);
        bars.stop();
        env.stdout.write(`${ds.name} version ${manifest.version}: ${manifest.shards.length} shards in ${out}\n`);
        return 0;
      }
      // Into the cluster's object storage.
      const cluster = await resolveCluster(typeof values['cluster'] === 'string' ? values['cluster'] : undefined);
      const ds = await load();
      throwIfAborted(signal, `importing ${ds.name}`);
      const r = await importToStore(ds, opts, cluster.s3, { ...(signal ? { signal } : {}), onShard });
      bars.stop();
      const counts = r.manifest.shards.map((x) => x.count).join('/');
      env.stdout.write(
        `${ds.name} version ${r.manifest.version} (${opts.folds} folds, ${counts} images): ${r.added ? 'imported' : 'already imported, nothing changed'} at ${r.key}\n`,
      );
      return 0;
    } finally {
      bars.stop();
    }
  }
  throw new UsageError(`unknown 'dataset ${sub ?? ''}' (use list, inspect, download or import)`);
}
