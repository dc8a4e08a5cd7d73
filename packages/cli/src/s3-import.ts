import { throwIfAborted } from '@cvc/core';
import { importDataset, type Dataset, type DatasetManifest, type ImportOptions } from '@cvc/data';
import { createDatasetCatalog, createObjectStore, layout, type StoreOptions } from '@cvc/storage';

/** Cancellation and progress of an import. */
export interface ImportHooks {
  /** Stops the import between shards (a CancelledError). */
  readonly signal?: AbortSignal;
  /** After each shard is stored. */
  readonly onShard?: (name: string, bytes: number) => void;
}

/**
 * Imports a dataset into object storage: fold shards and the manifest under
 * datasets/NAME/VERSION/, registered in the dataset's index. A version is
 * immutable: importing the same data with the same settings changes nothing.
 */
export async function importToStore(
  ds: Dataset,
  opts: ImportOptions,
  s3: StoreOptions,
  hooks: ImportHooks = {},
): Promise<{ manifest: DatasetManifest; added: boolean; key: string }> {
  const store = createObjectStore(s3);
  await store.ensureBucket();
  const catalog = createDatasetCatalog(store);
  // The version is a hash of the data and the settings: compute it first, without writing.
  const probe = await importDataset(ds, opts, (_n, chunks) => {
    throwIfAborted(hooks.signal, `importing ${ds.name}`);
    let bytes = 0;
    for (const c of chunks) bytes += c.length;
    return Promise.resolve({ bytes, sha256: '' });
  });
  const prefix = layout.datasetPrefix(ds.name, probe.version);
  const key = `${prefix}/manifest.json`;
  if ((await catalog.list(ds.name)).some((i) => i.version === probe.version) && (await store.stat(key))) {
    const manifest = JSON.parse(new TextDecoder().decode(await store.getBytes(key))) as DatasetManifest;
    return { manifest, added: false, key };
  }
  const manifest = await importDataset(ds, opts, async (name, chunks) => {
    throwIfAborted(hooks.signal, `importing ${ds.name}`);
    const r = await store.put(`${prefix}/${name}`, chunks);
    hooks.onShard?.(name, r.bytes);
    return { bytes: r.bytes, sha256: r.sha256 };
  });
  // Nothing is registered (the version stays invisible) when the import was stopped.
  throwIfAborted(hooks.signal, `importing ${ds.name}`);
  await store.put(key, new TextEncoder().encode(JSON.stringify(manifest, null, 2)), { contentType: 'application/json' });
  await catalog.register(ds.name, {
    version: manifest.version,
    folds: manifest.folds.k,
    scheme: manifest.folds.scheme,
    seed: manifest.folds.seed,
    limit: manifest.folds.limit,
    manifest: key,
    height: manifest.height,
    width: manifest.width,
    channels: manifest.channels,
  });
  return { manifest, added: true, key };
}
