import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDatasetCatalog, type DatasetImport } from './catalog.js';
import type { ObjectStore } from './object-store.js';

/** The calls the catalog makes, over a Map. */
function mapStore(): ObjectStore {
  const objects = new Map<string, Uint8Array>();
  return {
    bucket: 'cvc',
    stat: (key: string) => Promise.resolve(objects.has(key) ? { size: objects.get(key)?.length ?? 0, etag: '' } : undefined),
    getBytes: (key: string) => Promise.resolve(objects.get(key) as Uint8Array),
    list: (prefix: string) => Promise.resolve([...objects.keys()].filter((k) => k.startsWith(prefix))),
    put: (key: string, data: Uint8Array) => {
      objects.set(key, data);
      return Promise.resolve({ size: data.length, sha256: '' });
    },
  } as unknown as ObjectStore;
}

const entry = (folds: number): DatasetImport => ({
  version: `v${folds}`,
  folds,
  scheme: 'stratified',
  seed: 42,
  limit: null,
  manifest: `datasets/photos/v${folds}/manifest.json`,
  height: 32,
  width: 32,
  channels: 1,
});

test('a run with other folds than the import is told to give the import its --folds, or how to import a folder of images with its own', async () => {
  const catalog = createDatasetCatalog(mapStore());
  await assert.rejects(catalog.find('photos', { folds: 5 }), (err: Error) => {
    assert.match(
      err.message,
      /dataset 'photos' is not imported; run: cvc dataset import photos --folds 5, or for a folder of images: cvc dataset import FOLDER --name photos --folds 5/,
    );
    return true;
  });
  await catalog.register('photos', entry(3));
  await assert.rejects(catalog.find('photos', { folds: 5 }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'FOLDS_MISMATCH');
    assert.match(err.message, /imported with 3 folds, not 5: give --folds 3, or import it with 5 \(.*cvc dataset import FOLDER --name photos --folds 5\)/);
    return true;
  });
  assert.equal((await catalog.find('photos', { folds: 3 })).version, 'v3');
});

test('datasets() names every dataset with an index, sorted; other objects under datasets/ are not datasets', async () => {
  const store = mapStore();
  const catalog = createDatasetCatalog(store);
  assert.deepEqual(await catalog.datasets(), []);
  await catalog.register('photos', entry(3));
  await catalog.register('cars', entry(2));
  await store.put('datasets/photos/v3/manifest.json', new Uint8Array(1));
  assert.deepEqual(await catalog.datasets(), ['cars', 'photos']);
});
