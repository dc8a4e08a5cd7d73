import { createHash } from 'node:crypto';
import { DataError } from './errors.js';

/** A split's sources file as the manifest records it. */
export interface SourcesEntry {
  /** Object name relative to the dataset's prefix, e.g. `train.sources.json`. */
  readonly name: string;
  /** Number of paths: the split's source indices are 0..count-1. */
  readonly count: number;
  readonly bytes: number;
  readonly sha256: string;
}

/** The sources files of an imported image folder, per split. */
export interface DatasetSources {
  readonly train: SourcesEntry;
  readonly test: SourcesEntry;
}

interface SourcesFile {
  readonly format: 'cvc-sources';
  readonly split: 'train' | 'test';
  readonly paths: readonly string[];
}

/** The file name of a split's sources. */
export function sourcesName(split: 'train' | 'test'): string {
  return `${split}.sources.json`;
}

/** Encodes a split's source paths (index = the records' source index). */
export function encodeSources(split: 'train' | 'test', paths: readonly string[]): Uint8Array {
  const file: SourcesFile = { format: 'cvc-sources', split, paths };
  return new TextEncoder().encode(JSON.stringify(file) + '\n');
}

/**
 * Parses a sources file and checks it against its manifest entry (size,
 * SHA-256, path count). Returns the paths, indexed by source index: the
 * record with source index `i` in any shard of that split came from `paths[i]`
 * (relative to the imported folder).
 */
export function parseSources(bytes: Uint8Array, entry: SourcesEntry, name = entry.name): string[] {
  if (bytes.length !== entry.bytes) throw new DataError('SOURCES_CORRUPT', `is ${bytes.length} bytes, the manifest says ${entry.bytes}`, name);
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== entry.sha256) throw new DataError('SOURCES_CORRUPT', `sha256 ${sha} does not match the manifest's ${entry.sha256}`, name);
  let file: SourcesFile;
  try {
    file = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as SourcesFile;
  } catch (err) {
    throw new DataError('SOURCES_CORRUPT', 'is not valid JSON', name, { cause: err });
  }
  if (file?.format !== 'cvc-sources' || !Array.isArray(file.paths) || file.paths.some((p) => typeof p !== 'string'))
    throw new DataError('SOURCES_CORRUPT', 'is not a cvc sources file', name);
  if (file.paths.length !== entry.count) throw new DataError('SOURCES_CORRUPT', `lists ${file.paths.length} paths, the manifest says ${entry.count}`, name);
  return file.paths.map((p: unknown) => String(p));
}

/**
 * The source paths of a split of an imported dataset, indexed by the records'
 * source index, or undefined when the dataset was not imported from an image
 * folder (it has no sources). `getBytes` fetches an object of the dataset
 * version by its name relative to the version's prefix (a file in a
 * directory import, an S3 object under datasets/NAME/VERSION/).
 */
export async function readSourcePaths(
  manifest: { readonly sources?: DatasetSources | undefined },
  split: 'train' | 'test',
  getBytes: (name: string) => Promise<Uint8Array>,
): Promise<string[] | undefined> {
  const entry = manifest.sources?.[split];
  if (entry === undefined) return undefined;
  return parseSources(await getBytes(entry.name), entry);
}
