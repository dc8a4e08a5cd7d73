export { StorageError, StorageStallError, type StorageErrorCode } from './errors.js';
export { validateKey, validateSegment, layout, MAX_KEY_LENGTH } from './keys.js';
export {
  createObjectStore,
  logStoreRetries,
  storeOptionsSchema,
  type ObjectStore,
  type StoreHooks,
  type StoreOptions,
  type PutResult,
} from './object-store.js';
export { startS3Server, type S3Server } from './s3-server.js';
export { createDatasetCatalog, type DatasetCatalog, type DatasetImport } from './catalog.js';
export { s3EnvSchema, storeOptionsFromEnv } from './env.js';
