import { readManifest } from '@cvc/data';
import { createDatasetCatalog, createObjectStore } from '@cvc/storage';
import type { ClusterEndpoints } from './cluster-config.js';
import { listTable } from './format.js';

/** One imported version of a dataset in the cluster, as `cvc dataset list` shows it. */
export interface ListedImport {
  readonly dataset: string;
  readonly version: string;
  /** [height, width, channels]. */
  readonly shape: readonly [number, number, number];
  /** Every image of the version: its fold shards and its test shard. */
  readonly images: number;
  readonly testImages: number;
  readonly folds: number;
  readonly scheme: string;
  readonly seed: number;
  /** Object key of the version's manifest. */
  readonly manifest: string;
}

/**
 * Every version of every dataset in the cluster's S3 catalog, by dataset name
 * and then in import order (the newest of a dataset last). Image counts come
 * from each version's manifest (one read per version).
 */
export async function listClusterImports(cluster: ClusterEndpoints): Promise<ListedImport[]> {
  const store = createObjectStore(cluster.s3);
  const catalog = createDatasetCatalog(store);
  const out: ListedImport[] = [];
  for (const dataset of await catalog.datasets()) {
    for (const imp of await catalog.list(dataset)) {
      const m = await readManifest(store, imp.manifest);
      const count = (split: string): number => m.shards.filter((s) => s.split === split).reduce((n, s) => n + s.count, 0);
      const test = count('test');
      out.push({
        dataset,
        version: imp.version,
        shape: [imp.height, imp.width, imp.channels],
        images: m.shards.reduce((n, s) => n + s.count, 0),
        testImages: test,
        folds: imp.folds,
        scheme: imp.scheme,
        seed: imp.seed,
        manifest: imp.manifest,
      });
    }
  }
  return out;
}

/** The text of `cvc dataset list`: a row per version, or the line that says there is none yet. */
export function renderImports(rows: readonly ListedImport[]): string {
  return (
    listTable(
      ['dataset', 'version', 'shape', 'images', 'test', 'folds'],
      rows.map((r) => [r.dataset, r.version, r.shape.join('x'), String(r.images), String(r.testImages), `${r.folds} (${r.scheme}, seed ${r.seed})`]),
      'no datasets yet (cvc dataset import NAME, or cvc dataset import FOLDER --name NAME, adds one)',
    ) + '\n'
  );
}
