import { basename } from 'node:path';
import {
  checkImageFolder,
  directorySink,
  listImageFolder,
  writeImageFolder,
  writeManifest,
  DEFAULT_FOLDS,
  IMAGE_FITS,
  foldCountSchema,
  type DatasetManifest,
  type ImageFolderPlan,
  type ImageImportHooks,
  type ImageImportOptions,
} from '@cvc/data';
import { seedSchema } from '@cvc/model';
import { z } from 'zod';
import type { CliEnv } from './env.js';
import { choiceOpt, floatOpt, intOpt } from './args.js';
import { UsageError } from './errors.js';
import { resolveCluster } from './cluster-config.js';
import { importImageFolderToStore } from './s3-import.js';
import { Progress } from './progress.js';

/** The options of `cvc dataset import FOLDER` (beside those of every import). */
export const IMAGE_IMPORT_OPTIONS = {
  name: { type: 'string' },
  size: { type: 'string' },
  channels: { type: 'string' },
  fit: { type: 'string' },
  'test-fraction': { type: 'string' },
  'skip-invalid': { type: 'boolean' },
} as const;

/** `--size HxW` (or `--size N` for N x N). */
export function parseSize(v: unknown): { height: number; width: number } | undefined {
  if (v === undefined) return undefined;
  const m = typeof v === 'string' ? /^(\d+)(?:x(\d+))?$/i.exec(v.trim()) : null;
  const h = m ? Number(m[1]) : NaN;
  const w = m ? Number(m[2] ?? m[1]) : NaN;
  if (!(h >= 1 && h <= 4096 && w >= 1 && w <= 4096))
    throw new UsageError(`--size must be HxW (e.g. 32x32), each 1..4096, got '${typeof v === 'string' ? v : JSON.stringify(v)}'`);
  return { height: h, width: w };
}

/** A dataset name: one path segment of the cluster's S3 keys. */
const DATASET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The import options from the command line. */
function importOptions(values: Record<string, unknown>): ImageImportOptions {
  const name = values['name'];
  if (typeof name !== 'string' || name === '') throw new UsageError('importing an image folder needs --name NAME (the dataset name runs refer to)');
  // The name is a directory of the cluster's S3 (datasets/NAME/VERSION/): a '/' would nest it inside another dataset.
  if (!DATASET_NAME.test(name))
    throw new UsageError(`--name must be letters, digits, '.', '_' or '-' (starting with a letter or digit, at most 64), got '${name}'`);
  const size = parseSize(values['size']);
  const channels = values['channels'] === undefined ? undefined : (Number(choiceOpt(values, 'channels', ['1', '3'], '3')) as 1 | 3);
  const testFraction = floatOpt(values, 'test-fraction', z.number().gt(0).lt(1));
  return {
    name,
    ...(size ?? {}),
    ...(channels !== undefined ? { channels } : {}),
    fit: choiceOpt(values, 'fit', IMAGE_FITS, 'cover'),
    folds: intOpt(values, 'folds', DEFAULT_FOLDS, foldCountSchema) as number,
    seed: intOpt(values, 'seed', 42, seedSchema) as number,
    ...(testFraction !== undefined ? { testFraction } : {}),
    skipInvalid: values['skip-invalid'] === true,
  };
}

function summary(folder: string, plan: ImageFolderPlan, manifest: DatasetManifest, where: string): string {
  const l = plan.listing;
  const counts = manifest.shards.map((s) => s.count).join('/');
  const classes = l.labeled
    ? `${l.classNames.length} classes (${l.classNames.slice(0, 10).join(', ')}${l.classNames.length > 10 ? ', ...' : ''})`
    : 'unlabeled';
  const test = plan.testFrom.from === 'folder' ? 'test/ folder' : `test fraction ${plan.testFrom.fraction}`;
  const lines = [
    `${manifest.dataset} version ${manifest.version} (${manifest.folds.k} folds, ${counts} images, ${manifest.height}x${manifest.width}x${manifest.channels}, fit ${plan.fit}): ${where}`,
    `  from ${folder}: ${plan.train.length + plan.test.length} images, ${classes}, ${test}; ignored ${l.ignored.hidden} hidden and ${l.ignored.notImage} non-image file(s); skipped ${plan.skipped.length} invalid file(s)`,
    ...plan.skipped.map((p) => `  skipped ${p.path}: ${p.reason} [${p.code}]`),
  ];
  return lines.join('\n') + '\n';
}

/**
 * Warnings about classes that have images in test/ and none for training
 * (a class folder in test/ whose name matches no training folder: often a
 * typo or a case difference, which would make a class of its own that no
 * fold ever trains on), one line each.
 */
export function testOnlyClassWarnings(plan: Pick<ImageFolderPlan, 'listing' | 'train' | 'test'>): string[] {
  const l = plan.listing;
  if (!l.labeled) return [];
  const trained = new Set(plan.train.map((e) => e.label));
  const testOnly = new Map<number, number>();
  for (const e of plan.test) if (!trained.has(e.label)) testOnly.set(e.label, (testOnly.get(e.label) ?? 0) + 1);
  const training = l.classNames.filter((_, i) => trained.has(i));
  const shown = `${training.slice(0, 10).join(', ')}${training.length > 10 ? ', ...' : ''}`;
  return [...testOnly.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(
      ([label, n]) =>
        `warning: class '${l.classNames[label] ?? label}' has ${n} image(s) in test/ and none for training, so no fold learns it ` +
        `(a typo of a training folder? those are: ${shown})`,
    );
}

/**
 * `cvc dataset import FOLDER --name NAME [--size HxW] [--channels 1|3]
 * [--fit cover|contain|fill] [--folds K] [--test-fraction F] [--skip-invalid]
 * [--seed S] [--out DIR | --cluster FILE]`: an image folder into a dataset version.
 */
export async function importImageFolderCommand(folder: string, values: Record<string, unknown>, env: CliEnv, signal?: AbortSignal): Promise<number> {
  const opts = importOptions(values);
  const bars = new Progress(env.stderr);
  const label = `importing ${basename(folder)}`;
  const hooks: ImageImportHooks = {
    ...(signal ? { signal } : {}),
    onProgress: (phase, done, total) =>
      bars.set('import', { label: `${label}: ${phase === 'check' ? 'checking' : 'writing'}`, value: done, total, detail: 'images' }),
  };
  try {
    const listing = await listImageFolder(folder, signal ? { signal } : {});
    const out = values['out'];
    if (typeof out === 'string') {
      const plan = await checkImageFolder(listing, opts, hooks);
      const manifest = await writeImageFolder(plan, directorySink(out), hooks);
      await writeManifest(out, manifest);
      bars.stop();
      for (const w of testOnlyClassWarnings(plan)) env.stderr.write(`${w}\n`);
      env.stdout.write(summary(folder, plan, manifest, `imported into ${out}`));
      return 0;
    }
    const cluster = await resolveCluster(typeof values['cluster'] === 'string' ? values['cluster'] : undefined);
    const r = await importImageFolderToStore(listing, opts, cluster.s3, hooks);
    bars.stop();
    for (const w of testOnlyClassWarnings(r.plan)) env.stderr.write(`${w}\n`);
    env.stdout.write(summary(folder, r.plan, r.manifest, `${r.added ? 'imported' : 'already imported, nothing changed'} at ${r.key}`));
    return 0;
  } finally {
    bars.stop();
  }
}
