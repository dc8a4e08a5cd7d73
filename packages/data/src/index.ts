export { DataError, type DataErrorCode } from './errors.js';
export { type ImageSet, imageBytes, selectImages, concatImages, headImages, classHistogram } from './image-set.js';
export { parseIdx, readIdxFile, maybeGunzip, MAX_GUNZIPPED_BYTES, type IdxArray } from './idx.js';
export { parseCifarBatch, readCifarBatchFile, CIFAR_RECORD_BYTES } from './cifar.js';
export { DATASETS, datasetInfo, IDX_FILES, CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH, type DatasetInfo, type RemoteFile } from './registry.js';
export { readTar, type TarEntry } from './tar.js';
export { downloadFiles, downloadDataset, sha256File, type DownloadOptions } from './download.js';
export { loadDataset, locateDataset, type Dataset, type LocateOptions } from './load.js';
export { stratifiedKFold, randomEqualFolds, partFolds, stratifiedSubset, FOLD_SCHEMES, DEFAULT_FOLDS, foldCountSchema, type FoldScheme } from './folds.js';
export {
  shardChunks,
  shardChunksFrom,
  type ShardRecord,
  encodeShard,
  decodeShard,
  streamShardRecords,
  readShardStream,
  SHARD_VERSION,
  MAX_SHARD_BYTES,
  shardBytes,
  checkShardSize,
  type Shard,
  type ShardHeader,
} from './shard.js';
export {
  importDataset,
  computeFolds,
  parseManifest,
  readManifest,
  type DatasetManifest,
  type ShardEntry,
  type ImportOptions,
  type ShardSink,
  type ImageFolderInfo,
} from './manifest.js';
export { directorySink, writeManifest, readManifestFile, readShardFile } from './fs-sink.js';
export {
  decodeImage,
  decodeImageBytes,
  decodeImageWithInfo,
  probeImage,
  loadSharp,
  IMAGE_FITS,
  type ImageFit,
  type DecodeOptions,
  type ImageInfo,
} from './image-decode.js';
export {
  listImageFolder,
  IMAGE_EXTENSIONS,
  MAX_CLASSES,
  type ImageFolderEntry,
  type ImageFolderListing,
  type ImageFolderProblem,
  type ListOptions,
} from './image-folder.js';
export { readSourcePaths, parseSources, encodeSources, sourcesName, type SourcesEntry, type DatasetSources } from './sources.js';
export {
  checkImageFolder,
  writeImageFolder,
  InvalidImagesError,
  scratchCap,
  DEFAULT_SCRATCH_BYTES,
  type ObjectSink,
  type ImageImportOptions,
  type ImageImportHooks,
  type ImageFolderPlan,
} from './image-import.js';
export { mapOrdered } from './ordered-map.js';
