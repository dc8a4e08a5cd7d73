import { StorageError } from './errors.js';
import { layout, validateSegment } from './keys.js';
import type { ObjectStore } from './object-store.js';

/** One imported version of a dataset as the catalog lists it. */
export interface DatasetImport {
  readonly version: string;
  readonly folds: number;
  readonly scheme: string;
  readonly seed: number;
  readonly limit: number | null;
  /** Object key of the manifest. */
  readonly manifest: string;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

interface Index {
  readonly dataset: string;
  readonly imports: DatasetImport[];
}

/**
 * The per-dataset index at datasets/NAME/index.json: which versions exist and
 * with which fold settings. Versions are immutable; re-registering the same
 * version changes nothing.
 */
export interface DatasetCatalog {
  /** The names of every dataset with an index (datasets/NAME/index.json), sorted. */
  datasets(): Promise<string[]>;
  list(dataset: string): Promise<DatasetImport[]>;
  register(dataset: string, entry: DatasetImport): Promise<{ added: boolean }>;
  /** The newest import with `folds` folds (or exactly `version`); a StorageError says what exists instead. */
  find(dataset: string, want: { folds: number; version?: string }): Promise<DatasetImport>;
}

/** The import command of a missing dataset: a built-in one by its name, a folder of images by its folder and --name. */
const importHint = (dataset: string, folds: number): string =>
  `cvc dataset import ${dataset} --folds ${folds}, or for a folder of images: cvc dataset import FOLDER --name ${dataset} --folds ${folds}`;

export function createDatasetCatalog(store: ObjectStore): DatasetCatalog {
  const read = async (dataset: string): Promise<Index> => {
    const key = layout.datasetIndex(dataset);
    if (!(await store.stat(key))) return { dataset, imports: [] };
    // Read outside the try: an unreachable store (UNAVAILABLE) is not a corrupt index.
    const bytes = await store.getBytes(key);
    try {
      return JSON.parse(new TextDecoder().decode(bytes)) as Index;
    } catch (err) {
      throw new StorageError('CATALOG_CORRUPT', 'dataset index is not valid JSON', key, { cause: err });
    }
  };
  return {
    datasets: async () => {
      let keys: string[];
      try {
        keys = await store.list('datasets/');
      } catch (err) {
        // A bucket not created yet (nothing was ever imported) holds no dataset.
        if (err instanceof StorageError && err.code === 'NOT_FOUND') return [];
        throw err;
      }
      return keys
        .map((key) => key.split('/'))
        .filter((parts) => parts.length === 3 && parts[2] === 'index.json')
        .map((parts) => parts[1] as string)
        .sort();
    },
    list: async (dataset) => (await read(validateSegment(dataset, 'dataset'))).imports,
    register: async (dataset, entry) => {
      const idx = await read(validateSegment(dataset, 'dataset'));
      if (idx.imports.some((i) => i.version === entry.version)) return { added: false };
      const next: Index = { dataset, imports: [...idx.imports, entry] };
      await store.put(layout.datasetIndex(dataset), new TextEncoder().encode(JSON.stringify(next, null, 2)), { contentType: 'application/json' });
      return { added: true };
    },
    find: async (dataset, want) => {
      const imports = (await read(validateSegment(dataset, 'dataset'))).imports;
      if (imports.length === 0) {
        throw new StorageError('DATASET_NOT_IMPORTED', `dataset '${dataset}' is not imported; run: ${importHint(dataset, want.folds)}`);
      }
      if (want.version) {
        const v = imports.find((i) => i.version === want.version);
        if (!v)
          throw new StorageError(
            'DATASET_NOT_IMPORTED',
            `dataset '${dataset}' has no version ${want.version} (have ${imports.map((i) => i.version).join(', ')})`,
          );
        if (v.folds !== want.folds)
          throw new StorageError('FOLDS_MISMATCH', `dataset '${dataset}' version ${v.version} has ${v.folds} folds, not ${want.folds}`);
        return v;
      }
      const match = imports.filter((i) => i.folds === want.folds);
      const last = match[match.length - 1];
      if (!last) {
        const kinds = [...new Set(imports.map((i) => i.folds))];
        throw new StorageError(
          'FOLDS_MISMATCH',
          `dataset '${dataset}' is imported with ${kinds.join(', ')} folds, not ${want.folds}: give --folds ${kinds.join(' or ')}, or import it with ${want.folds} (${importHint(dataset, want.folds)})`,
        );
      }
      return last;
    },
  };
}
