import { throwIfAborted } from '@cvc/core';
import {
  checkImageFolder,
  importDataset,
  readManifest,
  writeImageFolder,
  type Dataset,
  type DatasetManifest,
  type ImageFolderListing,
  type ImageFolderPlan,
  type ImageImportHooks,
  type ImageImportOptions,
  type ImportOptions,
} from '@cvc/data';
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
  await registerManifest(store, key, manifest);
  return { manifest, added: true, key };
}

/** Stores the manifest (last: a version is visible only once it is complete) and registers it in the catalog. */
async function registerManifest(store: ReturnType<typeof createObjectStore>, key: string, manifest: DatasetManifest): Promise<void> {
  const catalog = createDatasetCatalog(store);
  await store.put(key, new TextEncoder().encode(JSON.stringify(manifest, null, 2)), { contentType: 'application/json' });
  await catalog.register(manifest.dataset, {
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
}

/**
 * Imports a listed image folder into object storage, like `importToStore`:
 * the check pass computes the version (writing nothing, failing on invalid
 * files unless told to skip them); an existing version is left as it is;
 * otherwise the shards and sources files go under datasets/NAME/VERSION/ and
 * the manifest is stored and registered last.
 */
export async function importImageFolderToStore(
  listing: ImageFolderListing,
  opts: ImageImportOptions,
  s3: StoreOptions,
  hooks: ImageImportHooks = {},
): Promise<{ manifest: DatasetManifest; added: boolean; key: string; plan: ImageFolderPlan }> {
  const store = createObjectStore(s3);
  await store.ensureBucket();
  const catalog = createDatasetCatalog(store);
  // Listing the catalog first checks the dataset name before any image is decoded.
  const existing = await catalog.list(opts.name);
  const plan = await checkImageFolder(listing, opts, hooks);
  const base = layout.datasetPrefix(opts.name, plan.version);
  const key = `${base}/manifest.json`;
  let stored: DatasetManifest | undefined;
  try {
    if (existing.some((i) => i.version === plan.version) && (await store.stat(key))) stored = await readManifest(store, key);
  } catch (err) {
    await plan.close();
    throw err;
  }
  if (stored) {
    // Already imported: the decoded pixels are not needed (writeImageFolder closes the plan otherwise).
    await plan.close();
    return { manifest: stored, added: false, key, plan };
  }
  const manifest = await writeImageFolder(
    plan,
    async (name, chunks) => {
      throwIfAborted(hooks.signal, `importing ${opts.name}`);
      const r = await store.put(`${base}/${name}`, chunks);
      return { bytes: r.bytes, sha256: r.sha256 };
    },
    hooks,
  );
  throwIfAborted(hooks.signal, `importing ${opts.name}`);
  await registerManifest(store, key, manifest);
  return { manifest, added: true, key, plan };
}
