import type { DatasetManifest } from '@cvc/data';
import { table } from './format.js';

/** How an import's test split was made, in words. */
function testSplit(m: DatasetManifest): string {
  const t = m.imageFolder?.test;
  if (t === undefined) return 'the official test split';
  return t.from === 'folder' ? 'the test/ folder' : `a ${t.fraction} share of the images`;
}

/**
 * `cvc dataset inspect` of an imported version (a directory written by
 * `dataset import --out DIR`, or a version in the cluster): name, version,
 * shape, folds, how an image folder was read, and the images per class in
 * every shard. `where` says where the manifest was read.
 */
export function describeImport(m: DatasetManifest, where: string): string {
  const folder = m.imageFolder;
  const lines = [`dataset ${m.dataset} version ${m.version} (imported) from ${where}`];
  lines.push(
    `${m.height}x${m.width}x${m.channels} uint8, ${folder?.labeled === false ? 'unlabeled' : `${m.classNames.length} classes`}, ` +
      `${m.folds.k} folds (${m.folds.scheme}, seed ${m.folds.seed}${m.folds.limit !== null ? `, limit ${m.folds.limit}` : ''}), test: ${testSplit(m)}`,
  );
  if (folder) lines.push(`image folder: fit ${folder.fit}, ${folder.skipped} invalid file(s) skipped`);
  const shards = m.shards.map((s) => (s.split === 'test' ? 'test' : `fold ${s.fold ?? '?'}`));
  const rows = m.classNames.map((name, c) => [String(c), name, ...m.shards.map((s) => String(s.classCounts[c] ?? 0))]);
  rows.push(['', 'all', ...m.shards.map((s) => String(s.count))]);
  lines.push('', table(['label', 'class', ...shards], rows));
  return lines.join('\n') + '\n';
}

/** The JSON of `cvc dataset inspect --json` of an imported version. */
export function importJson(m: DatasetManifest, where: string): Record<string, unknown> {
  return {
    name: m.dataset,
    version: m.version,
    where,
    format: 'cvc-dataset',
    shape: [m.height, m.width, m.channels],
    classNames: m.classNames,
    folds: m.folds,
    ...(m.imageFolder ? { imageFolder: m.imageFolder } : {}),
    shards: m.shards.map((s) => ({
      name: s.name,
      split: s.split,
      ...(s.fold !== undefined ? { fold: s.fold } : {}),
      count: s.count,
      classCounts: s.classCounts,
    })),
  };
}
